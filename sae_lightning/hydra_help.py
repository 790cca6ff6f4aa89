"""`--help` of the Hydra commands (sae-train, sae-embed, sae-label): the page Hydra prints (its own
help template: the config groups with their options, then the composed config), built without
Hydra's listing. That listing copies the whole config repository once per group option (126 copies,
most of a 1.5 s --help) and shows the typed schemas (`_schema*`) and the shared bases (`_wiki`) as
if they were choices; here a group's options are its selectable files (hydra_setup.group_options),
the ones `check_choices` accepts. benchmarks/bench_startup.py times it."""

from __future__ import annotations

import string

from .hydra_setup import compose_config, group_options

HELP_FLAGS = ("--help", "-h")


def wants_help(argv: list[str]) -> bool:
    return any(a in HELP_FLAGS for a in argv)


def config_groups(cfg) -> str:
    """`group: option, option` per config group of the command's own defaults list (hydra/ is Hydra's
    own): sae-label's page listed sae, trainer, domain... too, each of which it refuses."""
    groups = sorted(g for g in cfg.hydra.runtime.choices if "/" not in g and g != "hydra" and group_options(g))
    return "\n".join(f"{group}: {', '.join(group_options(group))}" for group in groups) + "\n"


def help_page(config_name: str, command: str, argv: list[str]) -> str:
    """The help of `command` with the overrides in argv applied (--resolve: values resolved)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    cfg = compose_config(config_name, [a for a in argv if not a.startswith("-")], job_name=command)
    template = string.Template(cfg.hydra.help.template)
    hydra_cfg = HydraConfig.instance()
    previous, hydra_cfg.cfg = hydra_cfg.cfg, None
    try:
        hydra_cfg.set_config(cfg)  # `${hydra:...}` values resolve as in Hydra's own help
        app = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        config = OmegaConf.to_yaml(app, resolve="--resolve" in argv)
    finally:
        hydra_cfg.cfg = previous
    return template.safe_substitute(APP_CONFIG_GROUPS=config_groups(cfg), CONFIG=config)
