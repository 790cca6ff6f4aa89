"""The config reference page, generated from conf/**/*.yaml and their comments at every build (an
mkdocs hook, docs/hooks.py), so it cannot drift from the configs. A preset that starts from a typed
schema (`defaults: [_schema]`, sae_lightning/schemas) is shown as the schema's knobs, each with its
default (the preset's value where it sets one), meaning and valid values, read from the dataclass.

Each `key: value  # comment` line is a knob; nested keys get dotted paths (hydra.run.dir); list
items belong to their key; `defaults:` lists pick other configs and are shown as such, not as
knobs. The comment lines at the top of a file describe the file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_@][\w.@/-]*)\s*:(?P<rest>.*)$")


@dataclass
class Knob:
    path: str  # dotted, e.g. sweeper.sampler.seed
    value: str  # as written ("" for a mapping)
    comment: str


def split_comment(text: str) -> tuple[str, str]:
    """value, comment: the first ` #` outside quotes starts the comment."""
    quote = None
    for i, ch in enumerate(text):
        if ch in "'\"" and quote in (None, ch):
            quote = None if quote == ch else ch
        elif ch == "#" and quote is None and (i == 0 or text[i - 1].isspace()):
            return text[:i].strip(), text[i + 1 :].strip()
    return text.strip(), ""


def parse(path: Path) -> tuple[str, list[Knob], list[str]]:
    """(description, knobs, defaults entries) of one YAML file."""
    lines = path.read_text().splitlines()
    description, knobs, defaults = [], [], []
    stack: list[tuple[int, str]] = []  # (indent, key) of the open mappings
    in_header, in_defaults = True, False
    for line in lines:
        stripped = line.strip()
        if in_header and stripped.startswith("#"):
            text = stripped.lstrip("#").strip()
            if not text.startswith("@package"):
                description.append(text)
            continue
        in_header = in_header and not stripped
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("- "):
            if in_defaults:
                defaults.append(split_comment(stripped[2:])[0])
            continue
        m = KEY.match(line)
        if not m:
            continue
        indent = len(m["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        value, comment = split_comment(m["rest"])
        in_defaults = indent == 0 and m["key"] == "defaults"
        if in_defaults:
            continue
        knobs.append(Knob(".".join([k for _, k in stack] + [m["key"]]), value, comment))
        if not value:
            stack.append((indent, m["key"]))
    return " ".join(d for d in description if d), knobs, defaults


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _yaml_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    return str(value)


def _flat(node: dict, prefix: str = "") -> dict:
    """A nested schema node as dotted keys (`wandb.settings.silent`)."""
    out: dict = {}
    for key, value in node.items():
        out |= _flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value}
    return out


def schema_rows(group: str, entry: str, preset: list[Knob]) -> list[str]:
    """The table of a preset over a schema: every knob of the schema (its sections' as dotted
    paths), the preset's value winning; then the classes Hydra builds (`_target_`)."""
    from sae_lightning.schemas import SCHEMA_PREFIX, SCHEMAS, schema_node
    from sae_lightning.schemas.knobs import knob_paths

    choice = entry[len(SCHEMA_PREFIX) :].lstrip("_")
    cls, own = SCHEMAS[group][choice], {k.path: k for k in preset}
    node = _flat(schema_node(group, choice))
    rows = [
        f"Schema: `{cls.__module__}.{cls.__name__}`",
        "",
        "| knob | default | what it does | valid values |",
        "| --- | --- | --- | --- |",
    ]
    for path, f in knob_paths(cls):
        value, doc = _yaml_value(node[path]), f.metadata["doc"]
        if path in own:
            value, doc = own[path].value, f"{doc} (this preset: {own[path].comment or 'set here'})"
        rows.append(f"| `{path}` | `{_cell(value)}` | {_cell(doc)} | {_cell(f.metadata['rule'].what)} |")
    targets = {k: v for k, v in node.items() if k.rpartition(".")[2] == "_target_"}
    targets |= {k.path: k.value for k in preset if k.path.rpartition(".")[2] == "_target_"}
    rows += [
        f"| `{k.path}` | `{_cell(k.value)}` | {_cell(k.comment or 'set by this preset')} | |"
        for k in preset
        if k.path not in node and k.value and k.path not in targets
    ]
    rows += [""] + [f"- builds `{target}` (`{path}`)" for path, target in targets.items()]
    return rows + [""]


def config_reference(conf_dir: Path) -> str:
    out = [
        "# Config reference",
        "",
        "Every knob under `conf/`, with its default and what it does: for the groups with a typed schema "
        "(`sae_lightning/schemas/`, see Typed configs) from the dataclass field, which also "
        "gives the valid values; for the others from the comment beside it in the YAML file. This page is "
        "generated at every docs build (`docs/gen_config_reference.py`), so it cannot drift. "
        "Override any knob on the command line: `sae-train sae.k=64 trainer.max_epochs=3`; pick a config of a "
        "group with `group=name` (`sae=relu`).",
        "",
    ]
    files = sorted(conf_dir.rglob("*.yaml"), key=lambda p: (p.parent != conf_dir, str(p.relative_to(conf_dir))))
    group = None
    for path in files:
        rel = path.relative_to(conf_dir)
        this_group = "top-level configs (one per command)" if rel.parent == Path(".") else f"group `{rel.parent}/`"
        if this_group != group:
            out += [f"## {this_group[0].upper() + this_group[1:]}", ""]
            group = this_group
        description, knobs, defaults = parse(path)
        out += [f"### `conf/{rel}`", ""]
        if description:
            out += [description, ""]
        schema = next((d for d in defaults if d.startswith("_schema")), None)
        if defaults:
            out += ["Composes: " + ", ".join(f"`{_cell(d)}`" for d in defaults), ""]
        if schema is not None:
            out += schema_rows(str(rel.parent), schema, knobs)
        elif knobs:
            out += ["| knob | default | what it does |", "| --- | --- | --- |"]
            out += [
                f"| `{_cell(k.path)}` | {'`' + _cell(k.value) + '`' if k.value else ''} | {_cell(k.comment)} |"
                for k in knobs
            ]
            out.append("")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(config_reference(Path(__file__).resolve().parent.parent / "conf"))
