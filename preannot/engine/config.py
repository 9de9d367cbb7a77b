"""The run configuration: a ``preannot.toml`` kept with the data, overridden by command-line flags.

```toml
[input]
paths = ["data/emails.jsonl"]      # files or folders, relative to this file

[output]
path = "out/predictions.json"      # Label Studio import JSON (.json) or JSON lines (.jsonl)

[run]
batch_size = 256
workers = 1

[[annotators]]
name = "products"                  # becomes the model_version prefix
type = "rules"                     # an annotator type from `preannot plugins`
rules = "../../rules/product-ner"  # any further keys are the annotator's options
```

Every section is parsed once, here, into a typed settings object; a key no section knows is
refused with the list of the keys it does know, so a typo never silently does nothing. Paths
are relative to the config file's folder (:meth:`RunConfig.path`).
"""

from __future__ import annotations

import codecs
import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..annotator import ConfigError, Context
from .workspace import Workspace

DEFAULT_FILE = "preannot.toml"
SECTIONS = ("input", "output", "run", "annotators", "trainers", "labelstudio", "harvest",
            "training", "ranking", "review", "serve", "labels", "selection", "drift")


def settings_sections() -> dict[str, type]:
    """Each ``[section]`` of SECTIONS that is one table, with the settings dataclass it is read
    into: what the config reference (docs/reference/config.md) must document, key by key. The
    ``[[annotators]]`` and ``[[trainers]]`` lists are each plugin type's own options."""
    return {"input": InputSettings, "output": OutputSettings, "run": RunSettings,
            "labelstudio": LabelStudioSettings, "harvest": HarvestSettings,
            "training": TrainingSettings, "ranking": RankingSettings, "review": ReviewSettings,
            "serve": ServeSettings, "labels": LabelSettings, "selection": SelectionSettings,
            "drift": DriftSettings}


@dataclass(frozen=True)
class InputSettings:
    paths: Any = field(default_factory=list)
    encoding: str = "utf-8"
    """Of text inputs (JSONL, JSON, CSV/TSV, .txt); a UTF-8 byte-order mark is always accepted."""


@dataclass(frozen=True)
class OutputSettings:
    path: str | None = None


@dataclass(frozen=True)
class RunSettings:
    batch_size: int = 256
    workers: int = 1
    """Worker processes; with ``engine = "ray"``, the actors in the pool."""
    engine: str = "local"
    """``local`` (worker processes on this machine) or ``ray`` (a Ray cluster: preannot[ray])."""
    address: str | None = None
    """The Ray cluster: ``auto``, ``ray://head:10001``...; none: Ray's rule (``$RAY_ADDRESS``,
    the cluster ``ray start`` runs here, else a Ray started for the run)."""


@dataclass(frozen=True)
class LabelStudioSettings:
    """``[labelstudio]``: the server (the token only indirectly) and the project."""

    url: str | None = None
    api_key_env: str | None = None
    """The name of a variable holding the token (never the token itself)."""
    api_key_file: Path | None = None
    """A file holding the token."""
    project: int | str | None = None
    """Project id or title (created with that title if absent)."""
    title: str | None = None
    """Title of a project `ls push` creates (default: ``preannot <folder>``)."""
    label_config: Path | None = None
    """A labeling config file (default: generated from the annotators)."""
    model_version: str | None = None
    combine_versions: bool = True
    """Name the pushed prediction after every annotator's version (else after what the file says)."""
    local_files_root: str | None = None
    """The server's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` when it serves files from this
    machine's disk (local images are then pushed as ``/data/local-files/`` paths); for the
    server `ls up` starts, the folder it serves (default: the one just above the images)."""


IOU_KEYS = ("span_iou", "box_iou", "mask_iou", "polygon_iou")


@dataclass(frozen=True)
class HarvestSettings:
    """``[harvest]``: where `ls pull` writes, and the overlaps that count as the same region."""

    output_dir: Path
    span_iou: float | None = None
    box_iou: float | None = None
    mask_iou: float | None = None
    polygon_iou: float | None = None
    truth: str = "majority"
    """With three or more annotations of a task: "majority" vote, or "weighted" by each
    annotator's estimated reliability."""
    adjudication_threshold: float = 0.3
    """Tasks whose annotators disagree this much (1 - mean pairwise F1) go to the "needs
    adjudication" tab; above 1: never."""

    @property
    def thresholds(self) -> dict[str, float]:
        """The overlap thresholds set in the file (the matcher's defaults fill the rest)."""
        return {k: getattr(self, k) for k in IOU_KEYS if getattr(self, k) is not None}


@dataclass(frozen=True)
class LabelSettings:
    """``[labels]``: labels of an older labeling config, mapped forward to the current ones."""

    rename: dict[str, str] = field(default_factory=dict)
    """``{OLD = "NEW"}``"""
    merge: dict[str, list[str]] = field(default_factory=dict)
    """``{NEW = ["A", "B"]}``"""


@dataclass(frozen=True)
class TrainingSettings:
    """``[training]``: the registry, the evaluation split, the gate and automatic retraining."""

    registry: Path
    corrections: Path
    """The corrections file trainers learn from (default: the harvest's)."""
    eval_fraction: float = 0.2
    metric: str = "f1"
    margin: float = 0.0
    label_tolerance: float = 0.05
    min_label_support: int = 5
    min_score: float = 0.0
    retrain_after: int = 0
    group_by: str | None = None
    """A task data field, or ``re:<regex>`` over the task id: a group stays on one side."""
    refit: bool = False
    """After the gate: retrain the promoted configuration on train + dev (never on eval)."""
    fusion_margin: float = 0.0
    """How much better (``metric``) a learned fusion must be than each of its sources to be used."""


@dataclass(frozen=True)
class ReviewSettings:
    """``[review]``: the production review's guarantee and where its files go."""

    output_dir: Path
    target_precision: float = 0.99
    """Of auto-accepted tasks..."""
    delta: float = 0.05
    """...with confidence ``1 - delta``."""
    audit_rate: float = 0.02
    """Share of auto-accepted tasks also sent to review, to measure the precision achieved."""
    project: int | str | None = None
    """The Label Studio review project, id or title (default: ``<[labelstudio] project> review``)."""
    sink: str = "jsonl"
    """Where released records go: ``jsonl`` (an outbox file) or ``http`` (POSTed to a URL)."""
    sink_path: Path | None = None
    """The JSONL sink's file (default: ``released.jsonl`` in ``output_dir``)."""
    sink_url: str | None = None
    """The HTTP sink's URL (e.g. a CRM's intake endpoint)."""
    sink_token_env: str | None = None
    """The name of a variable holding the HTTP sink's bearer token (never the token itself)."""


@dataclass(frozen=True)
class DriftSettings:
    """``[drift]``: the drift monitor of production review, and its reactions (each on by
    default; README "Drift")."""

    enabled: bool = True
    window: int = 500
    """Recent production tasks compared with the calibration's tasks."""
    min_window: int = 100
    """The window is tested once it holds this many tasks."""
    check_every: int = 100
    """`review run` checks after deciding this many tasks."""
    alpha: float = 0.001
    """The chance that one check of a window like the reference raises an alarm (all signals
    together: Holm's correction)."""
    suspend: str = "labels"
    """While an alarm lasts, auto-accept is off for the labels it concerns (every label when the
    drift is not about labels): ``labels``; ``all``; or ``off``."""
    audit_rate: float = 0.2
    """The audit rate while an alarm lasts (at least ``[review] audit_rate``)."""
    sample: int = 50
    """Drifted tasks pushed into the labeling project, ranked first, per alarm (0: none)."""
    min_post_drift: int = 30
    """A recalibration clears an alarm when it passes and holds this many reviewed tasks
    decided after the alarm."""


@dataclass(frozen=True)
class ServeSettings:
    """``[serve]``: ``preannot serve``, the ML backend Label Studio calls."""

    host: str = "127.0.0.1"
    """Loopback by default: put a reverse proxy (TLS) in front to serve other hosts."""
    port: int = 9090
    url: str | None = None
    """The address Label Studio reaches the backend at (default ``http://host:port``), for
    ``ls connect``."""
    learn: bool = True
    """Harvest in the background when annotations are saved, and retrain when due."""
    debounce: float = 10.0
    """Seconds without a new annotation event before the background harvest runs."""

    @property
    def backend_url(self) -> str:
        return (self.url or f"http://{self.host}:{self.port}").rstrip("/")


@dataclass(frozen=True)
class RankingSettings:
    """``[ranking]``: ``ranker`` names the ranker type; every other key is the ranker's option."""

    ranker: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SelectionSettings:
    """``[selection]``: ``selector`` names the selector type (diversity, hybrid, balance,
    random); ``k`` how many tasks it puts first in the queue; ``embedder`` the annotator whose
    :meth:`~preannot.Annotator.embed` gives the vectors (default: the first configured one that
    can embed, else TF-IDF + SVD of the task data key ``field`` (``data_field``), default
    "text"); ``dim`` the TF-IDF + SVD size; ``duplicates`` the cosine from which two tasks
    are near-duplicates (above 1: off). Other keys are the selector's options. ``configured``:
    the config has a ``[selection]`` table (``ls pull`` then counts near-duplicates among the
    annotated tasks)."""

    selector: str | None = None
    k: int = 200
    embedder: str | None = None
    dim: int = 128
    duplicates: float = 0.98
    data_field: str = "text"
    options: dict[str, Any] = field(default_factory=dict)
    configured: bool = False


@dataclass
class RunConfig:
    base_dir: Path
    inputs: list[Path] = field(default_factory=list)
    output: Path | None = None
    annotators: list[dict[str, Any]] = field(default_factory=list)
    trainers: list[dict[str, Any]] = field(default_factory=list)
    batch_size: int = 256
    workers: int = 1
    engine: str = "local"
    address: str | None = None
    encoding: str = "utf-8"
    labelstudio: LabelStudioSettings = field(default_factory=LabelStudioSettings)
    harvest: HarvestSettings = None  # type: ignore[assignment]  # set in __post_init__
    training: TrainingSettings = None  # type: ignore[assignment]
    ranking: RankingSettings = field(default_factory=RankingSettings)
    review: ReviewSettings = None  # type: ignore[assignment]
    serve: ServeSettings = field(default_factory=ServeSettings)
    labels: LabelSettings = field(default_factory=LabelSettings)
    selection: SelectionSettings = field(default_factory=SelectionSettings)
    drift: DriftSettings = field(default_factory=DriftSettings)

    def __post_init__(self) -> None:
        if self.harvest is None:
            self.harvest = HarvestSettings(output_dir=self.base_dir / "harvest")
        if self.review is None:
            self.review = ReviewSettings(output_dir=self.base_dir / "review",
                                         sink_path=self.base_dir / "review" / "released.jsonl")
        if self.training is None:
            self.training = TrainingSettings(
                registry=self.workspace.models,
                corrections=self.harvest.output_dir / "corrections.jsonl")

    @property
    def workspace(self) -> Workspace:
        """Where the ledger, caches and models live: ``.preannot/`` beside the config file."""
        return Workspace(self.base_dir / ".preannot")

    @property
    def state_dir(self) -> Path:
        """The workspace's folder, ``.preannot/``."""
        return self.workspace.root

    @property
    def registry_dir(self) -> Path:
        """The model registry: ``[training] registry``, default ``.preannot/models``."""
        return self.training.registry

    def context(self) -> Context:
        """What annotators and trainers are told about this run (paths, cache folder)."""
        return Context(base_dir=self.base_dir, cache_dir=self.workspace.cache)

    def path(self, value: str | Path) -> Path:
        """A path of the config file: relative ones are relative to its folder."""
        return self.context().path(value)


def _table(raw: dict[str, Any], section: str, where: str) -> dict[str, Any]:
    """The ``[section]`` table of the file (empty when absent); anything else is refused."""
    table = raw.get(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{section}] must be a table")
    return dict(table)


def _typed(section: str, cls: type, table: dict[str, Any], where: str, **fixed: Any) -> Any:
    """``cls`` built from a TOML table: unknown keys refused, values converted to the fields'
    types (paths resolved against the config's folder by the caller through ``fixed``)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if unknown := sorted(set(table) - set(fields)):
        raise ConfigError(f"{where}: [{section}] has no setting {', '.join(map(repr, unknown))} "
                          f"(known: {', '.join(sorted(fields))})")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key in fixed:
            continue
        kind = fields[key].type
        try:
            if kind in ("float", "float | None"):
                values[key] = float(value)
            elif kind == "int":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError("expected a whole number")
                values[key] = value
            elif kind == "bool":
                if not isinstance(value, bool):
                    raise ValueError("expected true or false")
                values[key] = value
            elif kind in ("str", "str | None"):
                if not isinstance(value, str):
                    raise ValueError("expected a string")
                values[key] = value
            else:
                values[key] = value
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: [{section}] {key} = {value!r}: {exc}") from None
    return cls(**values, **fixed)


def _paths(base: Path, table: dict[str, Any], *keys: str) -> dict[str, Path]:
    """The path-valued keys of a table, resolved against ``base``."""
    return {key: Context(base_dir=base).path(str(table[key])) for key in keys if key in table}


def load_config(path: Path | None) -> RunConfig:
    """Read a config file; with no path, ``./preannot.toml`` if present, else an empty config."""
    if path is None:
        default = Path.cwd() / DEFAULT_FILE
        if not default.exists():
            return RunConfig(base_dir=Path.cwd())
        path = default
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return parse_config(raw, path.resolve().parent, str(path))


def parse_config(raw: dict[str, Any], base: Path, where: str) -> RunConfig:
    """A :class:`RunConfig` from a parsed TOML document whose relative paths start at ``base``."""
    if unknown := sorted(set(raw) - set(SECTIONS)):
        raise ConfigError(f"{where}: unknown section {', '.join(map(repr, unknown))} "
                          f"(known: {', '.join(SECTIONS)})")
    config = RunConfig(base_dir=base)
    input_settings = _typed("input", InputSettings, _table(raw, "input", where), where)
    config.encoding = check_encoding(input_settings.encoding, f"{where}: [input] encoding")
    inputs = input_settings.paths
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not all(isinstance(p, str) for p in inputs):
        raise ConfigError(f"{where}: [input] paths = {inputs!r}: expected a list of paths")
    config.inputs = [config.path(p) for p in inputs]
    if out := _typed("output", OutputSettings, _table(raw, "output", where), where).path:
        config.output = config.path(out)
    run = _typed("run", RunSettings, _table(raw, "run", where), where)
    for key in ("batch_size", "workers"):
        if getattr(run, key) < 1:
            raise ConfigError(f"{where}: [run] {key} = {getattr(run, key)}: must be at least 1")
    config.batch_size, config.workers = run.batch_size, run.workers
    config.engine, config.address = check_engine(run.engine, f"{where}: [run] engine"), run.address
    config.annotators = _named(raw.get("annotators", []), "annotators", where)
    config.trainers = _named(raw.get("trainers", []), "trainers", where, need_name=True)

    table = _table(raw, "labelstudio", where)
    if "api_key" in table:
        raise ConfigError(f"{where}: [labelstudio] api_key is not allowed in preannot.toml: set "
                          "LABEL_STUDIO_API_KEY, or name a variable with api_key_env or a file "
                          "with api_key_file")
    config.labelstudio = _typed("labelstudio", LabelStudioSettings, table, where,
                                **_paths(base, table, "api_key_file", "label_config"))
    table = _table(raw, "harvest", where)
    config.harvest = _typed("harvest", HarvestSettings, table, where,
                            output_dir=_paths(base, table, "output_dir").get(
                                "output_dir", base / "harvest"))
    if config.harvest.truth not in ("majority", "weighted"):
        raise ConfigError(f"{where}: [harvest] truth = {config.harvest.truth!r}: use "
                          "\"majority\" or \"weighted\"")
    config.labels = _typed("labels", LabelSettings, _table(raw, "labels", where), where)
    rename, merge = config.labels.rename, config.labels.merge
    if not isinstance(rename, dict) or not all(isinstance(v, str) for v in rename.values()):
        raise ConfigError(f"{where}: [labels] rename = {config.labels.rename!r}: expected "
                          "{OLD = \"NEW\"}")
    if not isinstance(merge, dict) or not all(
            isinstance(v, list) and all(isinstance(x, str) for x in v) for v in merge.values()):
        raise ConfigError(f"{where}: [labels] merge = {config.labels.merge!r}: expected "
                          "{NEW = [\"A\", \"B\"]}")
    table = _table(raw, "training", where)
    config.training = _typed(
        "training", TrainingSettings, table, where,
        registry=_paths(base, table, "registry").get("registry", config.workspace.models),
        corrections=_paths(base, table, "corrections").get(
            "corrections", config.harvest.output_dir / "corrections.jsonl"))
    table = _table(raw, "ranking", where)
    config.ranking = RankingSettings(table.pop("ranker", None), table)
    table = _table(raw, "selection", where)
    try:
        config.selection = SelectionSettings(
            table.pop("selector", None), int(table.pop("k", 200)), table.pop("embedder", None),
            int(table.pop("dim", 128)), float(table.pop("duplicates", 0.98)),
            str(table.pop("field", "text")), table, "selection" in raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: [selection]: k and dim must be whole numbers, duplicates a "
                          f"number ({exc})") from None
    table = _table(raw, "review", where)
    if "sink_token" in table:
        raise ConfigError(f"{where}: [review] sink_token is not allowed in preannot.toml: name "
                          "the variable that holds it with sink_token_env")
    review_dir = _paths(base, table, "output_dir").get("output_dir", base / "review")
    config.review = _typed("review", ReviewSettings, table, where, output_dir=review_dir,
                           sink_path=_paths(base, table, "sink_path").get(
                               "sink_path", review_dir / "released.jsonl"))
    for key in ("target_precision", "delta"):
        if not 0 < getattr(config.review, key) < 1:
            raise ConfigError(f"{where}: [review] {key} = {getattr(config.review, key)}: must be "
                              "between 0 and 1")
    if not 0 <= config.review.audit_rate <= 1:
        raise ConfigError(f"{where}: [review] audit_rate = {config.review.audit_rate}: must be "
                          "between 0 and 1")
    if config.review.sink not in ("jsonl", "http"):
        raise ConfigError(f"{where}: [review] sink = {config.review.sink!r}: use \"jsonl\" or "
                          "\"http\"")
    if config.review.sink == "http" and not config.review.sink_url:
        raise ConfigError(f"{where}: [review] sink = \"http\" needs sink_url")
    config.drift = _typed("drift", DriftSettings, _table(raw, "drift", where), where)
    if config.drift.suspend not in ("labels", "all", "off") or not 0 < config.drift.alpha < 1 \
            or not 0 <= config.drift.audit_rate <= 1 or min(
                config.drift.window, config.drift.min_window, config.drift.check_every) < 1:
        raise ConfigError(f"{where}: [drift]: suspend must be \"labels\", \"all\" or \"off\"; "
                          "alpha between 0 and 1; audit_rate 0 to 1; window, min_window and "
                          "check_every at least 1")
    config.serve = _typed("serve", ServeSettings, _table(raw, "serve", where), where)
    if not 0 < config.serve.port < 65536 or config.serve.debounce < 0:
        raise ConfigError(f"{where}: [serve] port must be 1-65535 and debounce at least 0")
    return config


ENGINES = ("local", "ray")


def check_engine(name: str, where: str) -> str:
    """``name`` if it is an engine, else a ConfigError naming the engines."""
    if name not in ENGINES:
        raise ConfigError(f"{where} = {name!r}: use one of {', '.join(map(repr, ENGINES))}")
    return name


def check_encoding(name: str, where: str) -> str:
    """``name`` if Python knows the encoding, else a ConfigError saying where it came from."""
    try:
        codecs.lookup(name)
    except LookupError:
        raise ConfigError(f"{where} = {name!r}: no such encoding (e.g. utf-8, latin-1, "
                          "cp1252)") from None
    return name


def _named(tables: Any, section: str, where: str, need_name: bool = False) -> list[dict[str, Any]]:
    """``[[annotators]]`` or ``[[trainers]]``: each with a ``type`` and a unique ``name``."""
    specs = [dict(t) for t in tables]
    for index, spec in enumerate(specs):
        if "type" not in spec or (need_name and "name" not in spec):
            raise ConfigError(
                f"{where}: [[{section}]] #{index + 1}: set "
                + ("'name' (the model's name) and 'type' (a trainer type from `preannot plugins`)"
                   if need_name else "'type' (an annotator type from `preannot plugins`)"))
        spec.setdefault("name", spec["type"])
    names = [s["name"] for s in specs]
    if dupes := {n for n in names if names.count(n) > 1}:
        raise ConfigError(f"{where}: {section} names must be unique, repeated: {sorted(dupes)}")
    return specs
