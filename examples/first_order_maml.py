"""First-order MAML in a few lines: the meta-gradient is the query loss's gradient at the
adapted weights. Any objective (classification, regression) and any model work unchanged."""
import torch

from metalearn.algorithms.gradient import GradientLearner


class FirstOrderMAML(GradientLearner):
    """theta <- theta - beta * mean over tasks of grad L_query(adapt(theta, support))."""

    def task_gradient(self, ep, params):
        xs, xq = self.model.features(ep.support_x), self.model.features(ep.query_x)
        # inner_steps SGD steps on the support loss; adapt cuts them from the graph
        fast, support_losses, out = self.adapt_and_predict(
            params, xs, ep.support_y, xq, self.inner_steps)
        loss = self.objective.loss(out, ep.query_y)  # cross-entropy, MSE, ...: the config's
        grads = torch.autograd.grad(loss, list(fast.values()))
        out_pre = None  # the query outputs before adapting, for the steps whose logs are written
        if self.score_before_adapting:
            out_pre = self.outputs_before_adapting(params, xs, xq)
        scores = self.task_scores(ep, out_pre, out.detach(), support_losses)
        return dict(zip(fast, grads, strict=True)), scores
