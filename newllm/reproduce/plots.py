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
    """``curves``: ``untrained`` / ``trained`` -> list of {arch, judge label, tokens, rate}."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, (state, title) in zip(
        axes, (("untrained", "untrained (000)"), ("trained", "trained (002)")), strict=True
    ):
        for c in curves.get(state, []):
            style = "-" if c["style"] == "solid" else "--"
            ax.plot(
                c["tokens"], c["rate"], style, label=c["label"], **ARCH_STYLE[c["arch"]], **MARKER[c["arch"]]
            )
        _log(ax, "x")
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("tokens")
        ax.set_ylabel("convergence rate (mean over seeds)")
        ax.set_title(title)
        ax.legend(fontsize=7)
    return _save(fig, path)


def rate_vs_threshold(curves: list[dict[str, Any]], path: Path) -> Path:
    """``curves``: {arch, state, grid, rate} with the tolerance in ``rel`` units."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for c in curves:
        ax.plot(
            c["grid"], c["rate"], STATE_STYLE[c["state"]], label=f"{c['arch']}, {c['state']} ({c['tokens']} tok)",
            **ARCH_STYLE[c["arch"]],
        )  # fmt: skip
    _log(ax, "x")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("tolerance, rel = ||f(c) - c|| / ||f(c)||  (eval, warmup 0, 200 it)")
    ax.set_ylabel("convergence rate")
    ax.legend(fontsize=7)
    return _save(fig, path)


def residual_traces(traces: list[dict[str, Any]], l2_lines: dict[str, float], path: Path) -> Path:
    """``traces``: {arch, state, token_ids, l2: [tokens][iterations]}; horizontal ``l2_lines``."""
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharey=True)
    order = [
        ("sequential", "untrained"),
        ("layerwise", "untrained"),
        ("sequential", "trained"),
        ("layerwise", "trained"),
    ]
    for ax, (arch, state) in zip(axes.flat, order, strict=True):
        for t in traces:
            if (t["arch"], t["state"]) != (arch, state):
                continue
            for tok, series in zip(t["token_ids"], t["l2"], strict=True):
                ys = [v if v is not None and v > 0 else float("nan") for v in series]
                ax.plot(range(1, len(ys) + 1), ys, lw=1, label=f"id {tok}")
        for name, y in l2_lines.items():
            ax.axhline(y, color="gray", ls=":", lw=1)
            ax.text(1, y, f" {name}", fontsize=7, va="bottom", color="gray")
        _log(ax, "y")
        ax.set_title(f"{arch}, {state}", fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel("l2 residual ||f(c) - c||")
        ax.legend(fontsize=7)
    return _save(fig, path)


def spectra(spec: list[dict[str, Any]], path: Path) -> Path:
    """``spec``: {arch, state, token_id, singular, eig_abs} (descending)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for s in spec:
        kw = {"ls": STATE_STYLE[s["state"]], **ARCH_STYLE[s["arch"]], "label": f"{s['arch']}, {s['state']}"}
        axes[0].plot(range(1, len(s["singular"]) + 1), s["singular"], **kw)
        axes[1].plot(range(1, len(s["eig_abs"]) + 1), s["eig_abs"], **kw)
    names = ("singular values of J (sigma_max = first)", "|eigenvalues| of J (rho = first)")
    for ax, name in zip(axes, names, strict=True):
        ax.axhline(1.0, color="gray", ls=":", lw=1)
        ax.set_ylim(bottom=0.0)
        ax.set_xlabel("index (descending); the last two: LayerNorm's mean and scale directions")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    return _save(fig, path)
