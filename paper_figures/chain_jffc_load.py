"""JFFC vs SED, SA-JSQ, JSQ, JIQ over load, and JFFC against the Theorem 3.7 bounds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from paper_figures._common import ok_rows, plt, save_figure, summarise

NAME = "chain_jffc_load"
CONFIGS = ["experiments/configs/chain_jffc_load.toml"]


def plot(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    rows = ok_rows(rows)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    frames = []
    for i, policy in enumerate(["jffc", "sed", "sa_jsq", "jsq", "jiq"]):
        sub = rows[rows["evaluator.policy"] == policy]
        s = summarise(sub, ["evaluator.load"], "mean_response_s")
        if s.empty:
            continue
        ax1.errorbar(
            s["evaluator.load"].astype(float),
            s["mean"],
            yerr=s["std"],
            marker="os^vd"[i],
            capsize=2,
            label=policy.upper().replace("_", "-"),
        )
        frames.append(s.assign(metric="mean_response_s", policy=policy))
    ax1.set_xlabel("load rho = lambda / nu")
    ax1.set_ylabel("mean response time (s)")
    ax1.set_yscale("log")
    ax1.legend(fontsize=7)
    jffc = rows[rows["evaluator.policy"] == "jffc"]
    for col, label, style in (
        ("mean_response_s", "JFFC (simulation)", "o-"),
        ("lower_response_s", "Thm 3.7 lower bound", "--"),
        ("upper_response_s", "Thm 3.7 upper bound", ":"),
        ("mean_service_s", "JFFC mean service time", "-."),
    ):
        s = summarise(jffc, ["evaluator.load"], col)
        if s.empty:
            continue
        ax2.plot(s["evaluator.load"].astype(float), s["mean"], style, label=label)
        frames.append(s.assign(metric=col, policy="jffc"))
    ax2.set_xlabel("load rho = lambda / nu")
    ax2.set_ylabel("mean response time (s)")
    ax2.legend(fontsize=7)
    share = summarise(jffc, ["evaluator.load"], "service_share")
    frames.append(share.assign(metric="service_share", policy="jffc"))
    fig.tight_layout()
    return save_figure(fig, out_dir, NAME, pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())
