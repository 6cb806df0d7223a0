"""The report's figures (matplotlib, Agg backend, PNG): rate vs token count, rate vs tolerance,
residual traces (log scale) and Jacobian spectra. Each function takes the summaries built by
:mod:`newllm.reproduce.summary` and writes one file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# sequential drawn wider underneath, so overlapping curves (e.g. both at rate 1) stay visible
ARCH_STYLE = {"sequential": {"color": "tab:red", "lw": 3.0}, "layerwise": {"color": "tab:blue", "lw": 1.2}}
MARKER = {"sequential": {"marker": "o", "markersize": 8}, "layerwise": {"marker": "s", "markersize": 4}}
STATE_STYLE = {"untrained": "--", "trained": "-"}


def available() -> bool:
    """Whether matplotlib is installed (the ``plot`` extra); without it the report has no figures."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    # fixed margins (tight_layout measures every tick label: seconds on a busy machine); no metadata
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.92, wspace=0.25, hspace=0.45)
    fig.savefig(path, dpi=80, metadata={"Software": None})
    _plt().close(fig)
    return path


def _log(ax, which: str = "y") -> None:
    """Log scale with unlabelled minor ticks (cheap to draw)."""
    from matplotlib.ticker import LogLocator, NullFormatter, NullLocator

    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    axis.set_major_locator(LogLocator(base=10, numticks=8))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def rate_vs_tokens(curves: dict[str, Any], path: Path) -> Path:
    """``curves``: ``untrained`` / ``trained`` -> list of {arch, label, style, tokens, rate, lower, upper};
    one panel per state and architecture, error bars = the 95% interval of the mean over seeds."""
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharey=True)
    for row, (state, what) in enumerate(
        (("untrained", "untrained, ids 100, 200, ..."), ("trained", "trained (001 recipe), ids 0..N-1"))
    ):
        for col, arch in enumerate(("sequential", "layerwise")):
            ax = axes[row][col]
            for i, c in enumerate(x for x in curves.get(state, []) if x["arch"] == arch):
                lo = [max(0.0, r - a) for r, a in zip(c["rate"], c["lower"], strict=True)]
                hi = [max(0.0, b - r) for r, b in zip(c["rate"], c["upper"], strict=True)]
                shift = [t * (1.04 if i else 0.96) for t in c["tokens"]]  # keep the bars apart
                ax.errorbar(shift, c["rate"], yerr=[lo, hi], ls="-" if c["style"] == "solid" else "--",
                            marker="os"[i % 2], ms=4, capsize=3, lw=1.2, label=c["label"])  # fmt: skip
            _log(ax, "x")
            ax.margins(x=0.08)
            ax.set_ylim(-0.05, 1.05)
            ax.set_title(f"{arch}, {what}", fontsize=9)
            ax.set_xlabel("tokens", fontsize=8)
            ax.set_ylabel("convergence rate (seed mean, 95% CI)", fontsize=8)
            ax.tick_params(labelsize=8)
            ax.legend(fontsize=7, loc="center right")
    return _save(fig, path)


def rate_vs_threshold(curves: list[dict[str, Any]], lines: dict[str, float], path: Path) -> Path:
    """``curves``: {arch, state, tokens, grid, rate, min, max} (threshold in ``rel`` units); one panel per
    architecture, line = seed mean, band = range over seeds; ``lines``: labelled vertical markers."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, arch in zip(axes, ("sequential", "layerwise"), strict=True):
        for c in (x for x in curves if x["arch"] == arch):
            label = f"{c['state']}, {c['tokens']} tokens ({c['seeds']} seeds)"
            (ln,) = ax.plot(c["grid"], c["rate"], STATE_STYLE[c["state"]], lw=1.4, label=label)
            ax.fill_between(c["grid"], c["min"], c["max"], color=ln.get_color(), alpha=0.2, lw=0)
        for name, x in lines.items():
            ax.axvline(x, color="gray", ls=":", lw=1)
            ax.text(x, 0.02, f" {name}", fontsize=7, color="gray", rotation=90, va="bottom")
        _log(ax, "x")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(arch, fontsize=9)
        ax.set_xlabel("threshold, rel = ||f(c) - c|| / ||f(c)||", fontsize=8)
        ax.set_ylabel("rate within 200 eval iterations", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def residual_traces(traces: list[dict[str, Any]], l2_lines: dict[str, float], path: Path) -> Path:
    """``traces``: {arch, state, seed, token_ids, l2: [tokens][iterations]}; horizontal ``l2_lines``."""
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharey=True)
    order = [
        ("sequential", "untrained"),
        ("layerwise", "untrained"),
        ("sequential", "trained"),
        ("layerwise", "trained"),
    ]
    for ax, (arch, state) in zip(axes.flat, order, strict=True):
        seed = None
        for t in traces:
            if (t["arch"], t["state"]) != (arch, state):
                continue
            seed = t.get("seed")
            for tok, series in zip(t["token_ids"], t["l2"], strict=True):
                ys = [v if v is not None and v > 0 else float("nan") for v in series]
                ax.plot(range(1, len(ys) + 1), ys, lw=1, label=f"token id {tok}")
        for name, y in l2_lines.items():
            ax.axhline(y, color="gray", ls=":", lw=1)
            ax.text(200, y, f"{name} ", fontsize=7, va="bottom", ha="right", color="gray")
        _log(ax, "y")
        ax.set_title(f"{arch}, {state} (seed {seed}, 10-token set)", fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylabel("l2 residual ||f(c) - c||", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7, loc="lower left")
    return _save(fig, path)


def spectra(spec: list[dict[str, Any]], path: Path) -> Path:
    """``spec``: {arch, state, seed, token_id, singular, eig_abs} (descending)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for s in spec:
        kw = {"ls": STATE_STYLE[s["state"]], **ARCH_STYLE[s["arch"]], "label": f"{s['arch']}, {s['state']}"}
        axes[0].plot(range(1, len(s["singular"]) + 1), s["singular"], **kw)
        axes[1].plot(range(1, len(s["eig_abs"]) + 1), s["eig_abs"], **kw)
    where = f"seed {spec[0].get('seed')}, token id {spec[0]['token_id']}" if spec else ""
    names = ("singular values of J (sigma_max = first)", "|eigenvalues| of J (rho = first)")
    for ax, name in zip(axes, names, strict=True):
        ax.axhline(1.0, color="gray", ls=":", lw=1)
        ax.set_ylim(bottom=0.0)
        ax.set_xlabel("index, descending (the last two: LayerNorm's mean and scale directions)", fontsize=8)
        ax.set_title(f"{name}; {where}", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7, loc="lower left")
    return _save(fig, path)
