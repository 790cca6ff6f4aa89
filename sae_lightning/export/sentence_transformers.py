"""`sae-export <run> --to sentence-transformers --out <folder>`: a finished run as a
sentence-transformers `SparseEncoder` folder, the run's embedding model followed by its SAE as a
`SparseAutoEncoder` module, so that `SparseEncoder(folder).encode(texts)` gives the run's feature
activations. The feature labels go beside it in feature_labels.json (a list: entry i names feature i,
as the labelling wrote it: a mixed feature's says so, "mixed: …", a token feature's 'token: "cr…"').

sentence-transformers' SparseAutoEncoder is a TopK SAE whose encode is ours: ReLU(TopK((x - pre_bias)
encoderᵀ + latent_bias)), so pre_bias = b_dec, encoder.weight = W_encᵀ, latent_bias = b_enc. Its
decoder is tied to the encoder, unlike ours: the folder is for encoding, not for reconstruction.
Only TopK SAEs (and Matryoshka over a TopK base, whose inference is TopK) fit that module.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic import atomic_folder, check_replaceable
from ..errors import UserError
from ..output_places import check_outside_runs_and_stores
from ..path_checks import check_output_folder, out_flag

LABELS_FILE = "feature_labels.json"
TARGETS = ("sentence-transformers",)
OUT_FIX = "pick a new or empty --out folder"


def sparse_autoencoder_module(sae):
    """The SAE as sentence-transformers' SparseAutoEncoder module, with the same encode."""
    import torch  # here, not at the top: `sae-export --help` loads no torch
    from sentence_transformers.sparse_encoder.modules import SparseAutoEncoder

    if sae.saelens_architecture != "topk":
        raise UserError(
            f"a {sae.cfg.architecture} SAE cannot be a sentence-transformers SparseAutoEncoder "
            "(that module is TopK only): export a run trained with sae=topk"
        )
    cfg = sae.cfg
    # k_aux=0: AuxK is a training term; the module would otherwise run a second top-k in training mode.
    module = SparseAutoEncoder(input_dim=cfg.d_in, hidden_dim=cfg.d_sae, k=cfg.k, k_aux=0, normalize=False)
    with torch.no_grad():
        module.pre_bias.copy_(sae.b_dec.detach().float().cpu())
        module.encoder.weight.copy_(sae.W_enc.detach().float().cpu().T)
        module.latent_bias.copy_(sae.b_enc.detach().float().cpu())
    return module


def export_sentence_transformers(run_dir: str | Path, out: str | Path) -> Path:
    """Write the SparseEncoder folder for a finished run; returns it."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Normalize

    from ..search import check_has_model, open_run

    out = Path(out)
    check_output_folder(out, "--out")  # not a file, not a name too long
    check_outside_runs_and_stores(out, "--out")
    # before loading anything: a folder with any file in it, or the current folder (--out . was
    # refused only after the model had loaded, by atomic_folder's own check)
    check_replaceable(out, set(), OUT_FIX)
    run = open_run(run_dir)
    module = sparse_autoencoder_module(run.sae)
    check_has_model(
        run, run_dir, "there is no embedding model to put in front of its SAE; export a run trained on texts"
    )
    model = run.model
    modules = list(model)
    if run.normalize and not isinstance(modules[-1], Normalize):
        modules.append(Normalize())  # the store held unit-normalised embeddings: the SAE expects them
    encoder = SparseEncoder(modules=[*modules, module], device="cpu")

    def write(tmp: Path) -> None:  # whole or not at all: a kill leaves no half model that looks whole
        encoder.save(str(tmp))
        (tmp / LABELS_FILE).write_text(json.dumps(run.labels, indent=0, ensure_ascii=False) + "\n")

    return atomic_folder(out, write, OUT_FIX)


def feature_labels(folder: str | Path) -> list[str]:
    """The labels of an exported folder, by feature index ("" for a feature without one)."""
    return json.loads((Path(folder) / LABELS_FILE).read_text())


def _export(argv: list[str]) -> None:
    from ..command_parser import CommandParser

    p = CommandParser(prog="sae-export", description="Write a finished run in another library's format.")
    p.add_argument("run", help="a finished run dir (holds run.json and sae/)")
    p.add_argument("--to", required=True, choices=TARGETS, help="the target format")
    p.add_argument("--out", required=True, type=out_flag, help="the folder to write (new or empty)")
    a = p.parse_args(argv)
    out = export_sentence_transformers(a.run, a.out)
    print(f"SparseEncoder: {out}  (SparseEncoder({str(out)!r}).encode(texts); labels: {out / LABELS_FILE})")


def main() -> None:
    from ..cli import plain_command

    plain_command(_export)()


if __name__ == "__main__":
    main()
