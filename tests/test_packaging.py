"""The wheel runs outside the repo: it carries conf/ inside the package, its commands work from any
folder, and a missing or corrupt config file of an installed package is named in one line.

The wheel goes into a fresh venv whose only other path is the test venv's site-packages (a .pth
file), so torch and friends are not reinstalled and the package comes from the wheel alone."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from sae_lightning.conf_dir import check_conf_files, find_conf_dir
from sae_lightning.errors import UserError

REPO = Path(__file__).resolve().parent.parent
COMMANDS = ("sae-embed", "sae-train", "sae-label", "sae-compare", "sae-search", "sae-diff", "sae-export", "sae-serve")


def run(cmd: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(WANDB_MODE="offline", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the tracked tree, so the build leaves nothing in the checkout."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((REPO / name).read_bytes())
    done = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)], cwd=src
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for noise in ("license", "deprecat", "SetuptoolsWarning", "is absent from the `packages`"):
        assert noise.lower() not in (done.stdout + done.stderr).lower(), noise
    (whl,) = out.glob("sae_lightning-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    shared = os.path.realpath(sysconfig.get_paths()["purelib"])
    (Path(purelib) / "shared_test_venv.pth").write_text(shared + "\n")
    done = run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", str(wheel)], cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    return root


def test_wheel_carries_every_config_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.removeprefix("sae_lightning/conf/") for n in names if n.startswith("sae_lightning/conf/")}
    in_repo = {str(p.relative_to(REPO / "conf")) for p in (REPO / "conf").rglob("*.yaml")}
    assert shipped == in_repo and "config.yaml" in shipped and "sae/topk.yaml" in shipped
    tracked = subprocess.run(
        ["git", "ls-files", "sae_lightning"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(set(tracked) - names) == []  # every module and data file (e.g. report templates) ships
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert all(f"{c} = " in zipfile.ZipFile(wheel).read(entry_points).decode() for c in COMMANDS)


@pytest.mark.slow
def test_installed_wheel_trains_embeds_and_answers_from_another_folder(venv, tmp_path):
    bin_dir = venv / "bin"
    where = run(
        [str(bin_dir / "python"), "-c", "import sae_lightning.hydra_setup as c; print(c.__file__, c.CONF_DIR)"],
        cwd=tmp_path,
    )
    module_file, conf_dir = where.stdout.split()
    assert module_file.startswith(str(venv)) and conf_dir == str(Path(module_file).parent / "conf"), where.stdout

    cache = tmp_path / "cache"
    small = ["domain.limit=200", f"paths.cache_dir={cache}"]
    done = run([str(bin_dir / "sae-embed"), *small], cwd=tmp_path)
    assert done.returncode == 0 and "embedding store:" in done.stdout, done.stderr[-2000:]
    done = run(
        [
            str(bin_dir / "sae-train"),
            *small,
            "sae.d_sae=64",
            "sae.k=8",
            "data.batch_size=64",
            "trainer.max_epochs=1",
            "logger=none",
            "labeling.enabled=false",
            "trainer.enable_progress_bar=false",
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    print(done.stdout)
    (run_dir,) = (tmp_path / "outputs" / "train" / "runs" / "wiki_all").iterdir()
    assert (run_dir / "sae" / "cfg.json").is_file() and (run_dir / "metrics.json").is_file()

    for command in COMMANDS:
        done = run([str(bin_dir / command), "--help"], cwd=tmp_path)
        assert done.returncode == 0 and command.removeprefix("sae-") in done.stdout.lower(), (command, done.stderr)


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda conf: (conf / "sae" / "topk.yaml").unlink(), "sae/topk.yaml is missing (named in the defaults of"),
        (
            lambda conf: (conf / "data" / "default.yaml").write_text("batch_size: [512\n"),
            "data/default.yaml: corrupt YAML",
        ),
        (
            lambda conf: (conf / "domain" / "_wiki.yaml").unlink(),
            "domain/_wiki.yaml is missing (named in the defaults of",
        ),
    ],
)
def test_an_installed_package_with_a_broken_config_names_the_file(venv, tmp_path, damage, message):
    purelib = Path(
        run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=tmp_path,
        ).stdout.strip()
    )
    conf = purelib / "sae_lightning" / "conf"
    backup = {p: p.read_bytes() for p in conf.rglob("*.yaml")}
    try:
        damage(conf)
        done = run(
            [str(venv / "bin" / "sae-train"), "train=false", "domain.limit=10", f"paths.cache_dir={tmp_path}"],
            cwd=tmp_path,
        )
    finally:
        for p, data in backup.items():
            p.write_bytes(data)
    assert done.returncode == 2 and message in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr
    assert not (tmp_path / "outputs").exists()


def test_the_checkout_prefers_its_own_conf_and_checks_it():
    assert find_conf_dir() == REPO / "conf"
    check_conf_files(REPO / "conf")  # the repo's configs are whole
    with pytest.raises(UserError, match="config.yaml is missing"):
        check_conf_files(REPO / "no-such-conf")
