"""sae-serve: a local web app over finished runs, read-only on them.

    sae-serve outputs/train/runs/wiki_all/<time>            # http://127.0.0.1:8765/

Files, one job each: state.py (a run loaded once: SAE, store, model, the current labelling,
picked up again when relabelled), activations.py (every store text's activations, sparse),
catalog.py (the labelling as arrays), browse.py (Features), feature_view.py (a Feature page),
search_view.py (Search and steering), domains_view.py (Domains: sae-diff from memory),
matching.py (counterparts in other runs), params.py (query parameters, checked), app.py (routes
and errors), server.py (uvicorn on a bound socket), cli.py (the command). Templates extend the
report's page skeleton (pages/templates/page.html.j2) and reuse sae-diff's table and the shared
SVG macros; autoescape keeps every text of the run inert.
"""

from ..lazy import lazy_names

# Loaded on first use: the sae-serve script imports serve.cli, whose argument parser and Ctrl-C
# handling must be up before the web stack loads (a Ctrl-C in those seconds was a traceback).
_HOMES = dict.fromkeys(["load_served", "running"], "server")
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_names(__name__, _HOMES)
