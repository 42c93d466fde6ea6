"""The inner step's reach on the head: alpha times the largest eigenvalue of the support loss's
Hessian with respect to the head's weights, on meta-validation episodes, for checkpoints.

    python experiments/fomaml/curvature.py CKPT [CKPT ...] [--episodes 20]
    python experiments/fomaml/curvature.py init      # the weights a run with seed 42 starts from

Where alpha * lambda_max > 1 one SGD step of alpha overshoots along that direction, and the
derivative of the adapted weights with respect to the initial ones (I - alpha H) turns negative
there: the first-order meta-gradient, which takes that derivative as the identity, then points
the wrong way along it. Prints, per checkpoint, the median and largest alpha * lambda_max over
the episodes (alpha: --alpha, default Finn et al.'s 0.4), the eigenvalue itself, and the head
rows' norms.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path[:] = [str(ROOT / "src"), str(ROOT / "experiments")] + sys.path


def head_hessian_top(features, probabilities) -> float:
    """Largest eigenvalue of the mean cross-entropy's Hessian w.r.t. a linear head's weights:
    mean over rows of (diag(p) - p p^T) kron (h h^T)."""
    import torch

    n, ways = probabilities.shape
    dim = features.shape[1]
    hessian = torch.zeros(ways * dim, ways * dim, dtype=torch.float64)
    for h, p in zip(features.double(), probabilities.double(), strict=True):
        hessian += torch.kron(torch.diag(p) - torch.outer(p, p), torch.outer(h, h))
    return float(torch.linalg.eigvalsh(hessian / n)[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint files, or `init`")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--alpha", type=float, default=0.4, help="the inner step size (default 0.4)")
    args = p.parse_args(argv)

    import statistics

    import torch
    from bench import config

    from metalearn.instantiate import build
    from metalearn.models.norm import support_statistics

    torch.set_num_threads(1)
    cfg = config.experiment("fomaml_omniglot")
    data = build(cfg.data)
    data.setup("fit")
    episodes = [ep for _, ep in zip(range(args.episodes), data.val_dataloader(), strict=False)]
    model = build(cfg.model)
    alpha = args.alpha
    for path in args.checkpoints:
        if str(path) == "init":
            torch.manual_seed(int(cfg.seed))
            model = build(cfg.model)
        else:
            state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
            model.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
        top = model.top.eval()
        reach = []
        with torch.no_grad():
            for batch in episodes:
                ep = batch[0] if isinstance(batch, (list, tuple)) else batch
                xs = ep.support_x
                with support_statistics(top, len(xs)):
                    h = top.embed(xs)
                probs = torch.softmax(top.head(h), -1)
                reach.append(head_hessian_top(h, probs))
        rows = [round(x, 2) for x in top.head.weight.norm(dim=1).tolist()]
        top_eig = statistics.median(reach)
        print(f"{path}: lambda_max median {top_eig:.3g} (max {max(reach):.3g}) over {len(reach)} episodes, "
              f"alpha={alpha:g} x lambda_max {alpha * top_eig:.2f}; head row norms {rows}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
