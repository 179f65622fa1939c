"""The settings of ``make experiments``: one dataclass; each field has an ``EXPERIMENTS_<FIELD>`` variable and a
``--field`` flag of ``tools/experiments.py run``."""
import dataclasses
from typing import Mapping, Optional

from ..datasets.synthetic import STYLES
from .width import parse_widths

SIZE_STEP = 32  # reduced sizes are multiples of the pipelines' Pad size_divisor: the backbone sees exactly them


class ExperimentError(Exception):
    """Reported as one ``experiments.py: error: ...`` line; exit ``status``: 2 for bad input (a setting, a missing
    or malformed file given), 1 for a failed run."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class Settings:
    """What ``run`` does (:data:`SETTING_HELP` says what each field means). The defaults: 250 val images, 3
    random-window seeds, 2 width baselines and 5 latency rounds, 150 training images, 6 dense and 2 adaptation
    epochs, the trainings and tests two at a time (``jobs=2``, one thread each; latency measurements and the search
    alone). Measured on a 2-core CPU on 2026-12-02: 47.9 min (the dry run estimates 61 min: its two-at-a-time model
    is calibrated on one-at-a-time runs); ``jobs=1``, one run at a time, took 78.2 min (estimated 80)."""
    dir: str = 'work_dirs/experiments'
    data: str = 'data/sparsevit_experiments'
    style: str = 'scene'
    img_size: int = 448
    num_train: int = 150
    num_val: int = 250
    num_search: int = 50
    dense_epochs: int = 6
    adapt_epochs: int = 2
    budgets: int = 3
    widths: str = '0.75 0.5'
    search_steps: int = 40
    population: int = 12
    parents: int = 8
    guard: float = 1.25
    match_candidates: int = 5
    random_seeds: int = 3
    latency_rounds: int = 5
    latency_batch: int = 4
    latency_warmup: int = 2
    latency_repeats: int = 8
    window_images: int = 40
    np: int = 2
    jobs: int = 2
    seed: int = 0
    force: bool = False

    def check(self) -> None:
        """Raise ExperimentError naming the first bad value and what is allowed."""
        for name in ('num_train', 'num_val', 'num_search', 'dense_epochs', 'adapt_epochs', 'budgets',
                     'search_steps', 'match_candidates', 'random_seeds', 'latency_rounds', 'latency_batch',
                     'latency_repeats', 'window_images', 'np', 'jobs'):
            if getattr(self, name) < 1:
                raise ExperimentError(f'{knob(name)} must be >= 1, got {getattr(self, name)}')
        if self.latency_warmup < 0:
            raise ExperimentError(f'{knob("latency_warmup")} must be >= 0, got {self.latency_warmup}')
        if self.img_size < 4 * SIZE_STEP or self.img_size % SIZE_STEP:
            raise ExperimentError(f'{knob("img_size")} must be a multiple of {SIZE_STEP} and >= {4 * SIZE_STEP}, '
                                  f'got {self.img_size}')
        if not (self.guard == 0 or 1 < self.guard <= 2):
            raise ExperimentError(f'{knob("guard")} must be 0 (no guard budget) or in (1, 2], got {self.guard:g}')
        searched = self.budgets + (1 if self.guard else 0)
        if self.parents < 2 * searched or self.population < self.parents:
            raise ExperimentError(f'{knob("parents")} must be >= 2 x the searched budgets ({2 * searched}: two per '
                                  f'budget, the guard budget included) and {knob("population")} >= parents; got '
                                  f'parents {self.parents}, population {self.population}')
        if self.style not in STYLES:
            raise ExperimentError(f'{knob("style")} must be one of {", ".join(STYLES)}, got {self.style!r}')
        try:
            parse_widths(self.widths)
        except ValueError as err:
            raise ExperimentError(f'{knob("widths")}: {err}') from None

    @property
    def width_factors(self):
        """The reduced-width baselines' factors (``widths`` parsed)."""
        return parse_widths(self.widths)


#: What each setting means (``run --help``).
SETTING_HELP = dict(
    dir='output directory', data='data root of the small-objects dataset (written if missing)',
    style="appearance of the data: 'scene' (textured objects on smooth backgrounds, the premise of window "
    "pruning) or 'flat' (flat shapes: the data of earlier runs)",
    img_size='full input size and image size of the data (a multiple of 32)', num_train='training images',
    num_val='val images (the results table and its bootstrap intervals)',
    num_search='held-out images the search scores candidates on',
    dense_epochs='epochs of the dense training', adapt_epochs='epochs of SAA and of each dense finetune',
    budgets='latency budgets = reduced input sizes compared',
    widths='width factors of the reduced-width dense baselines, trained from scratch for dense + adapt epochs '
    "('none' for none)",
    search_steps='search steps (candidates drawn)', population='search population (shared by the budgets)',
    parents='search parents (at least 2 per searched budget)',
    guard="a further search budget this factor above the loosest one (capped at 0.95 of dense), searched only so "
    "that the loosest budgets' matching has scored configurations predicted above their edge (in the run of "
    "2026-12-02 every candidate of the two loosest budgets measured 10-20 %% below its baseline); 0 for none",
    match_candidates="search candidates per budget timed beside the budget's baseline: the search's best, then the "
    "best around the budget's edge (the best within 3 %% of the baseline's latency is compared)",
    random_seeds='selection seeds of the random-window rows (averaged), and of the kept-window analysis',
    latency_rounds='interleaved rounds of the latency measurements (median reported, spread flagged)',
    latency_batch='batch of the latency measurements', latency_warmup='untimed forwards per latency measurement',
    latency_repeats='timed forwards per latency measurement',
    window_images='val images of the kept-window analysis', np='search processes (torchpack dist-run)',
    jobs='trainings and tests run this many at a time, the cores shared out (latency measurements and the search '
    'always alone); 1: one by one (78 min instead of 48 on 2 cores)',
    seed='seed of data, training and search', force='redo every step')


def knob(field: str) -> str:
    """How a setting is named to the user: ``EXPERIMENTS_IMG_SIZE (--img-size)``."""
    return f"EXPERIMENTS_{field.upper()} (--{field.replace('_', '-')})"


def parse_setting(field: dataclasses.Field, text: str):
    """The value of ``text`` for ``field``; ExperimentError when it does not parse."""
    if field.type is bool:
        if text.strip().lower() not in ('0', '1', 'true', 'false', 'yes', 'no', ''):
            raise ExperimentError(f'EXPERIMENTS_{field.name.upper()}={text!r}: expected 0 or 1')
        return text.strip().lower() in ('1', 'true', 'yes')
    try:
        return field.type(text)
    except ValueError:
        raise ExperimentError(f'EXPERIMENTS_{field.name.upper()}={text!r} is not a valid '
                              f'{field.type.__name__}') from None


def settings_from(env: Mapping[str, str], overrides: Optional[dict] = None) -> Settings:
    """Settings from the ``EXPERIMENTS_*`` variables of ``env``, then ``overrides`` (flags given); validated. An
    empty variable means the default (``EXPERIMENTS_WIDTHS=none``: no width baseline)."""
    values = {}
    for field in dataclasses.fields(Settings):
        text = env.get(f'EXPERIMENTS_{field.name.upper()}', '')
        if text != '':
            values[field.name] = parse_setting(field, text)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    settings = Settings(**values)
    settings.check()
    return settings
