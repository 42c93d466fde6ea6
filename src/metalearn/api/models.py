"""Request bodies (unknown fields are refused) and response bodies of the HTTP API.

The response models document what the registry returns; they let fields they do not name
through (extra="allow") and the routes leave unset fields out, so a response is the registry's
row as it stands, the models only describe it.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from metalearn.api.settable import SETTINGS

_STEPS = SETTINGS["algorithm.eval_inner_steps"]  # the meta-test's steps: bounded as the key they set
OverrideStr = Annotated[str, Field(min_length=1, max_length=8192)]
Domain = Annotated[str, Field(pattern=r"^[A-Za-z0-9_&.-]+$", max_length=64)]
UtcTime = Annotated[str | None, Field(description="UTC, ISO 8601 with a trailing Z")]
# A JSON column as the registry holds it, documented by what the server and `metalearn train`
# write there, not checked: a row another writer of a shared registry made otherwise is still
# listed (a str in `overrides` made GET /runs answer 500 for every row).
Strings = Annotated[Any, WithJsonSchema({"anyOf": [{"type": "array", "items": {"type": "string"}},
                                                   {"type": "null"}]})]
JsonObject = Annotated[Any, WithJsonSchema({"anyOf": [{"type": "object"}, {"type": "null"}]})]

# ---- requests ---------------------------------------------------------------------------------


class RunRequest(BaseModel):
    """POST /runs: an experiment and Hydra overrides (`key=value` strings)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"experiment": "reptile_amazon", "overrides": ["seed=1", "trainer.max_steps=300"]},
    ]})
    experiment: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$", max_length=128,
                            description="a config in the experiment group (conf/experiment), without .yaml")
    overrides: list[OverrideStr] = Field(
        default_factory=list, max_length=64,
        description="Hydra overrides of keys the experiment's config has, as on the command line")


class TestRequest(BaseModel):
    """POST /runs/{id}/test: meta-test the attempt's checkpoint with K, L, episodes, adaptation
    steps, domains."""

    __test__ = False  # not a pytest class
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"shots": 5, "queries": 5, "episodes": 50, "steps": 20, "domains": ["automotive"]},
    ]})
    shots: int | None = Field(default=None, ge=1, le=1000, description="K support examples per class")
    queries: int | None = Field(default=None, ge=1, le=1000, description="L query examples per class")
    episodes: int | None = Field(default=None, ge=1, le=1000, description="episodes per test family")
    steps: int | None = Field(
        default=None, ge=int(_STEPS.low), le=int(_STEPS.high),
        description="test-time adaptation steps on each support set (algorithm.eval_inner_steps); "
                    "omitted: the attempt's own")
    domains: list[Domain] | None = Field(
        default=None, min_length=1, max_length=64,
        description="held-out groups to test on (review domains, text-family groups, image-folder "
                    "groups: data.heldout), of those the experiment's data knows; omitted: the "
                    "experiment's own test groups")


MAX_ROWS = 1000  # support rows, and query rows, of one prediction request
MAX_TEXT = 4096  # characters of one text
MAX_INPUTS = 64  # numbers of one row of a numbers model
MAX_CLASSES = 100  # distinct labels of one support set
LabelText = Annotated[str, Field(min_length=1, max_length=128)]
Label = LabelText | StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT,
                             description="a text model's input")
    x: list[Finite] | Finite | None = Field(default=None, description=(
        f"a numbers model's inputs, as many as it takes (at most {MAX_INPUTS}); one may be bare"))

    @field_validator("x")
    @classmethod
    def _few_inputs(cls, x: list[float] | float | None) -> list[float] | float | None:
        if isinstance(x, list) and not 1 <= len(x) <= MAX_INPUTS:
            raise ValueError(f"1 to {MAX_INPUTS} numbers")
        return x


class SupportRow(_Row):
    """A labelled example of the new task: `text` (a text model) or `x` (a numbers model)."""

    label: Label = Field(description="its class (a regression model: its target value)")


class QueryRow(_Row):
    """An example to predict: `text` or `x`; with a label it is scored."""

    label: Label | None = Field(default=None, description="optional: its known class or value")


class PredictRequest(BaseModel):
    """POST /runs/{id}/predict: a new task's support set and the queries to predict."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"support": [{"text": "Broke after two days.", "label": "negative"},
                     {"text": "Does exactly what it says.", "label": "positive"}],
         "query": [{"text": "Arrived late and scratched."}]},
    ]})
    support: list[SupportRow] = Field(min_length=2, max_length=MAX_ROWS,
                                      description=f"labelled rows of 2 to {MAX_CLASSES} classes")
    query: list[QueryRow] = Field(min_length=1, max_length=MAX_ROWS, description="rows to predict")
    labels: list[LabelText] | None = Field(
        default=None, min_length=2, max_length=MAX_CLASSES,
        description="the class order (default: integers numerically, else sorted)")

    @model_validator(mode="after")
    def _few_classes(self) -> PredictRequest:
        classes = {str(row.label) for row in self.support}
        if len(classes) > MAX_CLASSES:
            raise ValueError(f"support: {len(classes)} classes, at most {MAX_CLASSES}")
        return self


# ---- responses --------------------------------------------------------------------------------


class _Open(BaseModel):
    """A registry row: the fields named here, and any others the registry has, passed through."""

    model_config = ConfigDict(extra="allow")


class Health(BaseModel):
    """GET /health: the registry answers, and how busy the runner is."""

    status: str = Field(description="`ok` when the registry answered", examples=["ok"])
    schema_version: int = Field(description="the registry's schema version")
    running: int = Field(description="attempts this server is running now")
    max_parallel: int = Field(description="attempts it runs at once at most")
    max_queued: int = Field(description="attempts that may wait at most; more are answered 429")


class Queued(BaseModel):
    """An attempt was queued; follow it with GET /runs/{id} or /runs/{id}/metrics."""

    id: int = Field(description="the new attempt's id")
    status: str = Field(description="`queued`", examples=["queued"])


class TestQueued(Queued):
    """A meta-test attempt was queued for the parent's checkpoint."""

    __test__ = False  # not a pytest class
    parent_id: int = Field(description="the attempt whose checkpoint is tested")


class Cancelled(BaseModel):
    """POST /runs/{id}/cancel: what became of the attempt."""

    id: int
    status: str = Field(description="`interrupted` (it had not started) or `cancelling` "
                                    "(its process was sent SIGTERM)", examples=["cancelling"])


class AttemptSummary(_Open):
    """An attempt as listed: everything but its config."""

    id: int | None = None
    name: str | None = None
    kind: str | None = Field(default=None, description=(
        "`train`, `test` (a meta-test of parent_id) or `validate` (a checkpoint's meta-validation)"))
    parent_id: int | None = Field(default=None, description="for a meta-test: the attempt tested")
    experiment: str | None = None
    algorithm: str | None = None
    status: str | None = Field(default=None, description="queued, running, testing, completed, "
                                                         "failed, interrupted or retracted")
    overrides: Strings = Field(default=None, description="the Hydra overrides it ran with")
    command: Strings = Field(default=None, description="the command line it was started with")
    tags: Any = None
    created_at: UtcTime = None
    started_at: UtcTime = None
    ended_at: UtcTime = None
    heartbeat_at: UtcTime = None
    lease_until: UtcTime = Field(default=None, description="UTC, ISO 8601 with Z: counted as "
                                                           "interrupted once this passes")
    host: str | None = None
    pid: int | None = None
    git_commit: str | None = None
    output_dir: str | None = None
    ckpt_path: str | None = Field(default=None, description="its best checkpoint, once it has one")
    error: str | None = Field(default=None, description="why it failed or was interrupted")


class MetricSummary(_Open):
    """One metric of an attempt: how many rows, their range, and the value at the last step."""

    name: str | None = None
    count: int | None = None
    min: float | None = None
    max: float | None = None
    last_step: int | None = None
    last: float | None = Field(default=None, description="the value at last_step (null: NaN)")


class TestResult(_Open):
    """A meta-test result of one group (a held-out domain, task or class set) and one metric:
    its mean over the group's episodes and the 95% confidence interval."""

    __test__ = False  # not a pytest class
    attempt_id: int | None = None
    group: str | None = Field(default=None, description="the held-out group, e.g. a domain")
    metric: str | None = Field(default=None, description="the objective's metric: acc, mse, ...")
    value: float | None = None
    ci95: float | None = None
    episodes: int | None = None
    shots: int | None = None
    queries: int | None = None


class Attempt(AttemptSummary):
    """One attempt: its composed config, a summary of each metric, its test results."""

    config: JsonObject = Field(default=None, description="the composed Hydra config")
    metrics: dict[str, MetricSummary] | None = Field(default=None, description="by metric name")
    test_results: list[TestResult] | None = None


class MetricRow(_Open):
    """One logged value."""

    name: str | None = None
    step: int | None = None
    value: float | None = Field(default=None, description="null stands for NaN")
    time: float | None = Field(default=None, description="unix seconds when it was logged")


class MetricsPage(_Open):
    """New metric rows of an attempt, whole steps only, ordered by step then name."""

    id: int | None = None
    status: str | None = Field(default=None, description="the attempt's status now")
    metrics: list[MetricRow] | None = None
    last_step: int | None = Field(default=None, description="pass it back as after_step for the next page")


class Prediction(BaseModel):
    """One query row's prediction."""

    predicted: str | float | list[float] = Field(description="its class (regression: its value)")
    probabilities: dict[str, float] | None = Field(
        default=None, description="each class's probability, in class order (regression: absent)")
    label: str | None = Field(default=None, description="the label the query row gave (absent: none)")


class Predictions(BaseModel):
    """The queries predicted, in the request's order, by the checkpoint adapted to the support set."""

    id: int = Field(description="the attempt whose checkpoint predicted")
    classes: list[str] | None = Field(description="the support set's classes in class order "
                                                  "(regression: null)")
    predictions: list[Prediction]
    adapted: bool | None = Field(description="whether test-time adaptation ran, where the "
                                             "algorithm may decline it (its adapt check), else null")
    metric: str = Field(description="the objective's metric (acc, mse, ...)")
    score: float | None = Field(description="the metric over the query rows, where every one "
                                            "has a label, else null")


# ---- errors -----------------------------------------------------------------------------------


class Problem(BaseModel):
    """An error: what went wrong and what to do about it."""

    detail: str


class ValidationIssue(BaseModel):
    """One field a request got wrong, as FastAPI reports it."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationProblem(BaseModel):
    """A request refused before anything started: FastAPI's list of field errors, or one
    message naming the bad experiment, override, domain or status."""

    detail: str | list[ValidationIssue]
