"""The searchable feature list: one compact HTML card per live feature, dead ones listed at the end.

Size is the constraint here: 6144 features x 8 top texts x 300 chars is already ~15 MB of text.
`text_plan` therefore measures the real texts and picks the largest per-text length (then, if
needed, the fewest texts per card) that keeps the cards under a byte budget, and the page says
which limits were applied. Markup per card is kept terse (short class names, colours as classes,
no repeated inline styles except segment widths).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from .colors import DomainColors
from .fmt import attr, data_num, esc, is_num, num, pct
from .load import RunData

MAX_CARDS = 6144  # beyond this the page stops being readable anyway; features.parquet has the rest
MAX_TEXTS, MIN_TEXTS = 8, 3
MAX_CHARS, MIN_CHARS = 300, 150  # below ~150 chars a text loses its context: show fewer texts instead
MAX_KEYWORDS = 10
CARDS_BUDGET = 12_500_000  # bytes for the card list; the rest of a 6144-feature page is ~1 MB


def card_order(run: RunData) -> tuple[np.ndarray, np.ndarray, int]:
    """Row indices of live features sorted by density (descending, unknown last), capped at
    MAX_CARDS; dead rows by feature id; and how many live features were left out."""
    live = np.flatnonzero(~run.dead)
    dens = np.nan_to_num(run.density[live], nan=-1.0)
    live = live[np.lexsort((run.feature_id[live], -dens))]
    dead = np.flatnonzero(run.dead)
    dead = dead[np.argsort(run.feature_id[dead], kind="stable")]
    return live[:MAX_CARDS], dead, max(0, live.size - MAX_CARDS)


def text_plan(head_bytes: int, lines: list[list[tuple[str, str]]], budget: int = CARDS_BUDGET) -> tuple[int, int]:
    """(texts per card, max chars per text) that keep the cards within `budget` bytes.

    head_bytes: the exact size of all cards without their texts; lines: per card, the rendered
    markup before each text and the text itself. Sizes are UTF-8 bytes (a char of Greek or CJK
    text costs 2-3), so the bound holds for any language. Prefers all texts at full length, then
    shorter texts down to MIN_CHARS, then fewer texts.
    """
    n = len(lines)
    pre = np.zeros((n, MAX_TEXTS))  # markup bytes around a text
    chars = np.zeros((n, MAX_TEXTS))  # text length in chars
    ratio = np.ones((n, MAX_TEXTS))  # UTF-8 bytes per char of the text
    for i, ls in enumerate(lines):
        for j, (p, t) in enumerate(ls[:MAX_TEXTS]):
            pre[i, j] = len(p.encode()) + len("</li>") + 3  # + an ellipsis when cut
            chars[i, j] = len(t)
            if t:
                ratio[i, j] = len(esc(t).encode()) / len(t)  # escaping and UTF-8 both inflate

    def size(k: int, cap: int) -> float:
        return head_bytes + float((pre[:, :k] + np.minimum(chars[:, :k], cap) * ratio[:, :k]).sum())

    for k in range(MAX_TEXTS, MIN_TEXTS - 1, -1):
        if size(k, MAX_CHARS) <= budget:
            return k, MAX_CHARS
        if size(k, MIN_CHARS) <= budget:
            lo, hi = MIN_CHARS, MAX_CHARS  # largest cap that fits: lo fits, hi does not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if size(k, mid) <= budget else (lo, mid)
            return k, lo
    return MIN_TEXTS, MIN_CHARS


def _clip(t: str, cap: int) -> str:
    return t if len(t) <= cap else t[:cap].rstrip() + "…"


def _get(col, i, default=None):
    return default if col is None else col[i]


def card_parts(run: RunData, colors: DomainColors, rows: np.ndarray) -> list[tuple[str, list[tuple[str, str]]]]:
    """Per card: its HTML up to the text list, and (markup before the text, raw text) per top text.
    Texts stay raw here so text_plan can decide how much of them fits before they are cut."""
    c = run.cols
    label, reason, kws, kwsc = c.get("label"), c.get("label_reason"), c.get("keywords"), c.get("keyword_scores")
    texts, acts, tdoms, tids = c.get("top_texts"), c.get("top_acts"), c.get("top_domains"), c.get("top_ids")
    main, spec, tfl = c.get("main_domain"), c.get("domain_specificity"), c.get("tfidf_label")
    auroc, rauroc, tauroc = c.get("label_auroc"), c.get("random_label_auroc"), c.get("tfidf_auroc")
    lift = c.get("keyword_hit_lift")
    out = []
    for i in rows:
        i = int(i)
        fid = int(run.feature_id[i])
        lab = _get(label, i) or ""
        a, s, l_ = _get(auroc, i), _get(spec, i), _get(lift, i)
        why = _get(reason, i)
        head = esc(lab) if lab else ('<em class="nolab">no label</em>'
                                     + (f' <span class="why">({esc(why)})</span>' if why else ""))
        parts = [f'<article class="card" id="f{fid}" data-i="{fid}" data-d="{data_num(run.density[i])}" '
                 f'data-a="{data_num(a)}" data-l="{data_num(l_)}" data-s="{data_num(s)}">'
                 f'<h3><span class="fid">#{fid}</span> {head}</h3>']
        shares = run.domain_shares[i]
        if shares:
            segs = sorted(shares.items(), key=lambda kv: -kv[1])
            parts.append('<div class="bar">' + "".join(
                f'<i class="{colors.cls(d)}" style="width:{100 * v:.1f}%" title="{attr(d)} {pct(v)}"></i>'
                for d, v in segs if v >= 0.01) + "</div>")
        meta = [f"density {pct(run.density[i])}"]
        if auroc is not None:
            base = [f"{n_} {num(_get(col, i), 3)}" for n_, col in (("random", rauroc), ("TF-IDF", tauroc)) if col is not None]
            meta.append(f"AUROC <b>{num(a, 3)}</b>" + (f" ({', '.join(base)})" if base else ""))
        if lift is not None:
            meta.append(f"lift {num(l_, 3)}")
        m = _get(main, i)
        if m:
            meta.append(f'<i class="sw {colors.cls(m)}"></i>{esc(m)}' + (f" (specificity {num(s, 2)})" if is_num(s) else ""))
        parts.append('<p class="meta">' + " · ".join(meta) + "</p>")
        kw = _get(kws, i) or []
        if kw:
            sc = _get(kwsc, i) or []
            parts.append('<p class="kw">' + ", ".join(
                esc(w) + (f"<small>{float(sc[j]):.2f}</small>" if j < len(sc) and is_num(sc[j]) else "")
                for j, w in enumerate(kw[:MAX_KEYWORDS])) + "</p>")
        tl = _get(tfl, i)
        if tl:
            parts.append(f'<p class="tf">TF-IDF: {esc(tl)}</p>')
        lines = []
        tx = _get(texts, i) or []
        if tx:
            ac, dm, ids = _get(acts, i) or [], _get(tdoms, i) or [], _get(tids, i) or []
            for j, t in enumerate(tx[:MAX_TEXTS]):
                act = f"<b>{num(ac[j], 3)}</b> " if j < len(ac) else ""
                d = dm[j] if j < len(dm) else None
                dom = f'<i class="sw {colors.cls(d)}"></i><em>{esc(d)}</em> ' if d else ""
                tip = f' title="{attr(ids[j])}"' if j < len(ids) and ids[j] is not None else ""
                lines.append((f"<li{tip}>{act}{dom}", t or ""))
        out.append(("".join(parts), lines))
    return out


def assemble_cards(parts: list[tuple[str, list[tuple[str, str]]]], k: int, cap: int) -> str:
    out = []
    for head, lines in parts:
        if lines:
            lis = "".join(f"{p}{esc(_clip(t, cap))}</li>" for p, t in lines[:k])
            out.append(f'{head}<ol class="tx">{lis}</ol></article>')
        else:
            out.append(head + "</article>")
    return "\n".join(out)


def reason_counts(run: RunData, rows: np.ndarray) -> Counter:
    reasons = run.cols.get("label_reason")
    return Counter((reasons[int(i)] or "unknown") if reasons is not None else "unknown" for i in rows)


def unlabelled_live(run: RunData) -> np.ndarray:
    label = run.cols.get("label")
    if label is None:
        return np.zeros(0, dtype=np.int64)
    return np.array([i for i in range(run.n) if not run.dead[i] and not label[i]], dtype=np.int64)


def dead_list(run: RunData, rows: np.ndarray) -> str:
    """Dead features as one compact line of ids (they have no texts or labels to show)."""
    if not rows.size:
        return '<p class="note">No dead features.</p>'
    ids = ", ".join(str(int(run.feature_id[i])) for i in rows)
    return (f'<details class="dead"><summary>{rows.size:,} dead features (never fired on the evaluation '
            f'texts; no card)</summary><p class="ids">{ids}</p></details>')


def features_section_body(run: RunData, colors: DomainColors) -> str:
    rows, dead, left_out = card_order(run)
    parts = card_parts(run, colors, rows)
    head_bytes = sum(len(h.encode()) + len('<ol class="tx"></ol></article>') + 1 for h, _ in parts)
    k, cap = text_plan(head_bytes, [ls for _, ls in parts])
    unl = unlabelled_live(run)
    notes = [f"{rows.size:,} live features, sorted by density; up to {k} top texts per card, "
             f"each cut to {cap} characters."]
    if left_out:
        notes.append(f"{left_out:,} more live features (the rarest) are not shown; see features.parquet.")
    if unl.size:
        rc = reason_counts(run, unl)
        notes.append(f"{unl.size:,} live features have no label (" +
                     ", ".join(f"{esc(r)}: {n:,}" for r, n in rc.most_common()) + ").")
    controls = ('<div class="controls"><input id="q" type="search" placeholder="filter by label, keyword, text, domain or #id" '
                'aria-label="filter features"> <label>sort <select id="sort" aria-label="sort features">'
                '<option value="d">density</option><option value="a">label AUROC</option>'
                '<option value="l">keyword-hit lift</option><option value="s">domain specificity</option>'
                '<option value="i">feature id</option></select></label> '
                f'<span class="note"><span id="nshown">{rows.size:,}</span> shown</span></div>')
    return ("".join(f'<p class="note">{n}</p>' for n in notes) + controls
            + f'<div id="cards">\n{assemble_cards(parts, k, cap)}\n</div>' + dead_list(run, dead))
