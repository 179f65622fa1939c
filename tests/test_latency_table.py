"""The additive latency table on a tiny sparse backbone: the in-context schedule, exact additivity under a
deterministic clock, sharding, a real (CPU-timed) build, calibration, JSON round trip and stale-table rejection.
No timing assertions."""
import json
import random
from collections import Counter
from functools import partial

import pytest
import torch

import sparsevit.utils.latency as latency_mod
from sparsevit.schedule import dense_genes, gene_names, genes_key, genes_to_ratios, sample_genes, sparsest_genes
from sparsevit.search.latency_table import (LatencyTable, StaleTableError, build_latency_table, calibrate_table,
                                            describe_calibration, entries_to_genes, fit_line, forward_schedule,
                                            spread_configs, stage_entries, table_key)

from helpers import tiny_backbone

DEPTHS = (2, 2, 4, 2)
IMG, BATCH = 112, 1


pytestmark = pytest.mark.usefixtures('one_cpu_thread')


# table_backbone(embed_dims=16): seeded, in eval mode
table_backbone = partial(tiny_backbone, depths=DEPTHS, num_heads=(1, 2, 2, 4), window_size=7, out_indices=(0, 1, 2, 3))


def measure(backbone, num_warmup: int, num_repeats: int) -> float:
    """The real latency, as ``tools/measure_latency.py`` measures it."""
    return latency_mod.measure_backbone_latency(backbone, IMG, BATCH, num_warmup, num_repeats, 'cpu')['latency_ms']


def test_stage_entries_cover_the_space():
    assert len(stage_entries((2, 2, 6, 2))) == 9 + 9 + 165 + 9  # Swin-T: 192 measurements
    entries = stage_entries(DEPTHS, (0.0, 0.5))
    assert entries == [(0, (0.0,)), (0, (0.5,)), (1, (0.0,)), (1, (0.5,)), (2, (0.0, 0.0)), (2, (0.0, 0.5)),
                       (2, (0.5, 0.5)), (3, (0.0,)), (3, (0.5,))]


def test_schedule_covers_every_entry_in_ever_different_company():
    schedule = forward_schedule((2, 2, 6, 2), (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8), rounds=2, seed=0)
    assert len(schedule) == 2 * 165 and all(len(entries) == 4 for entries in schedule)
    for i, n in enumerate((9, 9, 165, 9)):
        seen = Counter(entries[i] for entries in schedule[:165])
        assert len(seen) == n, f'stage {i}: every entry once per round at least'
        assert max(seen.values()) - min(seen.values()) <= 1
    assert schedule[:165] != schedule[165:], 'each round reshuffled'
    genes = entries_to_genes(schedule[0], (2, 2, 6, 2))
    assert list(genes) == gene_names((2, 2, 6, 2)) and genes_to_ratios(genes, (2, 2, 6, 2))
    assert forward_schedule(DEPTHS, (0.0, 0.5), 1, seed=3) == forward_schedule(DEPTHS, (0.0, 0.5), 1, seed=3)


def test_prediction_is_exact_under_an_additive_cost(cost_clock):
    backbone = table_backbone()
    cost_clock(backbone)
    table = build_latency_table(backbone, IMG, BATCH, num_warmup=0, num_rounds=1, device='cpu')
    assert table.fixed_ms == pytest.approx(3.0 + 4 * 1.0)
    assert table.meta['method'] == 'in-context' and table.meta['forwards'] == 45  # stage 2: C(10, 2) entries
    rng = random.Random(0)
    configs = [dense_genes(DEPTHS), sparsest_genes(DEPTHS)] + [sample_genes(rng, DEPTHS) for _ in range(6)]
    for genes in configs:
        backbone.set_pruning_ratios(genes_to_ratios(genes, DEPTHS))
        measured = measure(backbone, 0, 1)
        assert table.predict(genes) == pytest.approx(measured, rel=1e-9)
    assert table.predict(sparsest_genes(DEPTHS)) < table.predict(dense_genes(DEPTHS))


def test_stage_times_inside_a_forward_add_up_to_the_forward():
    from sparsevit.search.latency_table import StageClock
    backbone = table_backbone()
    backbone.set_pruning_ratios(0.4)
    with torch.inference_mode():
        total, stages = StageClock(backbone, torch.device('cpu')).forward(torch.randn(BATCH, 3, IMG, IMG))
    assert len(stages) == len(DEPTHS) and all(ms > 0 for ms in stages) and sum(stages) < total
    assert 'forward_stage' not in vars(backbone), 'no method is replaced on the instance'
    assert not backbone._stage_observers, 'the stage observer is removed'


def test_time_interleaved_warms_each_configuration_then_times_rounds_in_order(cost_clock):
    from sparsevit.search.timing import time_interleaved
    backbone = table_backbone()
    cost_clock(backbone)
    configs = [dense_genes(DEPTHS), sparsest_genes(DEPTHS), dense_genes(DEPTHS)]
    ratios = []
    for genes in configs:
        backbone.set_pruning_ratios(genes_to_ratios(genes, DEPTHS))
        ratios.append(backbone.pruning_ratios)
    backbone.set_pruning_ratios(0.3)
    seen, rounds = [], []
    hook = backbone.register_forward_pre_hook(lambda module, args: seen.append(module.pruning_ratios))
    times = time_interleaved(backbone, configs, IMG, BATCH, num_warmup=2, num_repeats=3, device=torch.device('cpu'),
                             progress=rounds.append)
    hook.remove()
    assert seen == [r for r in ratios for _ in range(2)] + ratios * 3, 'warm-up per configuration, then rounds'
    assert rounds == [0, 1, 2]
    assert len(times) == 3 and all(len(t) == 3 for t in times)
    assert backbone.pruning_ratios == tuple(tuple([0.3] * d) for d in DEPTHS), 'ratios must be restored'
    backbone.set_pruning_ratios(genes_to_ratios(configs[0], DEPTHS))
    dense_ms = measure(backbone, 0, 1)  # under the cost clock every forward of a configuration costs the same
    assert times[0] == pytest.approx([dense_ms] * 3) and times[2] == pytest.approx([dense_ms] * 3)
    assert max(times[1]) < min(times[0])


def test_device_label_of_the_table_key(monkeypatch):
    """Part of every saved table's key: the exact strings (``cuda:`` prefix included) must not change."""
    import platform
    from sparsevit.search.latency_table import device_name
    cpu = platform.processor() or platform.machine()
    assert device_name(torch.device('cpu')) == f'cpu:{cpu}:{torch.get_num_threads()}threads'
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda device=None: 'NVIDIA H100')
    assert device_name(torch.device('cuda')) == 'cuda:NVIDIA H100'
    assert table_key(table_backbone(), IMG, BATCH, torch.device('cuda'))['device'] == 'cuda:NVIDIA H100'


def test_sharded_build_equals_single_build(cost_clock):
    backbone = table_backbone()
    cost_clock(backbone)
    single = build_latency_table(backbone, IMG, BATCH, 0, 2, 'cpu', choices=(0.0, 0.4, 0.8))
    shard1 = {}

    def gather1(local):  # rank 1 of a fake 2-rank all-gather: keep its samples; rank 0 gets them as well
        shard1.update(local)
        return [dict(samples={}, fixed=[]), local]

    build_latency_table(backbone, IMG, BATCH, 0, 2, 'cpu', choices=(0.0, 0.4, 0.8), shard=(1, 2), gather=gather1)
    assert 0 < len(shard1['fixed']) < 12, 'rank 1 ran part of the forwards'
    sharded = build_latency_table(backbone, IMG, BATCH, 0, 2, 'cpu', choices=(0.0, 0.4, 0.8), shard=(0, 2),
                                  gather=lambda local: [local, shard1])
    assert sharded.stages == [pytest.approx(s) for s in single.stages]
    assert sharded.fixed_ms == pytest.approx(single.fixed_ms)


def test_real_build_round_trip_and_stale_rejection(tmp_path):
    backbone = table_backbone()
    backbone.set_pruning_ratios(0.3)
    table = build_latency_table(backbone, IMG, BATCH, num_warmup=1, num_rounds=2, device='cpu',
                                choices=(0.0, 0.4, 0.8))
    assert backbone.pruning_ratios == tuple(tuple([0.3] * d) for d in DEPTHS), 'ratios must be restored'
    assert table.fixed_ms > 0 and all(ms > 0 for stage in table.stages for ms in stage.values())
    assert [len(s) for s in table.stages] == [3, 3, 6, 3]
    genes = {n: 0.4 for n in dense_genes(DEPTHS)}
    backbone.set_pruning_ratios(genes_to_ratios(genes, DEPTHS))
    measured = measure(backbone, 2, 10)
    print(f'tiny backbone: predicted {table.predict(genes):.2f} ms, measured {measured:.2f} ms')

    path = str(tmp_path / 'table.json')
    table.save(path)
    key = table_key(backbone, IMG, BATCH, torch.device('cpu'), (0.0, 0.4, 0.8))
    loaded = LatencyTable.load(path, expected_key=key)
    assert loaded.predict(genes) == table.predict(genes)
    with pytest.raises(KeyError, match='not in the latency table'):
        loaded.predict({**genes, 'backbone.stages.0': 0.1})

    with pytest.raises(StaleTableError, match=r'img_size=112 \(now 224\)'):
        LatencyTable.load(path, expected_key=table_key(backbone, 224, BATCH, torch.device('cpu'), (0.0, 0.4, 0.8)))
    with pytest.raises(StaleTableError, match='batch_size=1 \\(now 4\\)'):
        LatencyTable.load(path, expected_key=table_key(backbone, IMG, 4, torch.device('cpu'), (0.0, 0.4, 0.8)))
    with pytest.raises(StaleTableError, match='model.embed_dims=16 \\(now 32\\)'):
        LatencyTable.load(path, expected_key=table_key(table_backbone(embed_dims=32), IMG, BATCH, torch.device('cpu'),
                                                       (0.0, 0.4, 0.8)))
    with pytest.raises(StaleTableError, match='choices'):
        LatencyTable.load(path, expected_key=table_key(backbone, IMG, BATCH, torch.device('cpu')))
    key['device'] = 'cuda:NVIDIA H100'
    with pytest.raises(StaleTableError, match='device='):
        LatencyTable.load(path, expected_key=key)

    (tmp_path / 'bad.json').write_text('{"version": 1, "key": ')
    with pytest.raises(ValueError, match='cannot read latency table'):
        LatencyTable.load(str(tmp_path / 'bad.json'))
    (tmp_path / 'other.json').write_text(json.dumps({'something': 'else'}))
    with pytest.raises(ValueError, match='is not a version-2 latency table'):
        LatencyTable.load(str(tmp_path / 'other.json'))
    (tmp_path / 'old.json').write_text(json.dumps(dict(table.to_dict(), version=1)))
    with pytest.raises(StaleTableError, match='version 1 \\(uncalibrated\\), now 2; delete it'):
        LatencyTable.load(str(tmp_path / 'old.json'))


def test_calibration_fits_offset_and_scale_from_spread_configurations(cost_clock):
    backbone = table_backbone()
    cost_clock(backbone)
    table = build_latency_table(backbone, IMG, BATCH, num_warmup=0, num_rounds=1, device='cpu')
    measured = []

    def measure_many(configs):  # a machine where every forward pays 3 ms more and runs 10 % slower than the sum
        measured.extend(configs)
        return [3.0 + 1.1 * table.additive(genes) for genes in configs]

    calibrated = calibrate_table(table, measure_many, num_configs=6, seed=0)
    cal = calibrated.calibration
    assert cal['model'] == 'line' and cal['loo_error_pct']['line'] == pytest.approx(0.0, abs=1e-9)
    assert cal['offset_ms'] == pytest.approx(3.0) and cal['scale'] == pytest.approx(1.1)
    assert cal['fit_max_abs_error_pct'] == pytest.approx(0.0, abs=1e-9) and len(cal['configs']) == 6
    assert measured[0] == dense_genes(DEPTHS) and measured[-1] == sparsest_genes(DEPTHS)
    spread = [table.additive(g) for g in measured]
    assert spread[0] == max(spread) and spread[-1] == min(spread) and spread[1:-1] == sorted(spread[1:-1])
    assert len({genes_key(g) for g in measured}) == 6
    for genes in [sample_genes(random.Random(i), DEPTHS) for i in range(5)]:
        assert calibrated.predict(genes) == pytest.approx(3.0 + 1.1 * table.additive(genes))
        assert table.predict(genes) == table.additive(genes), 'an uncalibrated table predicts the plain sum'
    round_trip = LatencyTable.from_dict(json.loads(json.dumps(calibrated.to_dict())))
    assert round_trip.predict(measured[2]) == calibrated.predict(measured[2])
    assert spread_configs(table, 2) == [dense_genes(DEPTHS), sparsest_genes(DEPTHS)]
    assert fit_line([1.0], [4.0]) == (3.0, 1.0)
    assert 'line: measured = 3.000 ms + 1.1000 x additive' in describe_calibration(cal)

    rng = random.Random(0)  # the table is right; the measurements carry 2 % noise
    plain = calibrate_table(table, lambda configs: [table.additive(g) * rng.gauss(1, 0.02) for g in configs])
    plain = plain.calibration
    assert plain['model'] == 'none' and (plain['offset_ms'], plain['scale']) == (0.0, 1.0), plain['loo_error_pct']
    slower = calibrate_table(table, lambda configs: [1.3 * table.additive(g) for g in configs]).calibration
    assert slower['model'] == 'scale' and slower['scale'] == pytest.approx(1.3)


def test_a_non_square_table_times_its_input_and_keys_it(cost_clock):
    """``img_size=(H, W)`` (a segmentor's input, ``tools/search.py --img_size H W``): the table times that input
    (the cost clock counts its tokens) and its key records ``[H, W]``; a square key stays a number."""
    backbone = table_backbone()
    cost_clock(backbone)
    wide = build_latency_table(backbone, (56, 112), BATCH, num_warmup=0, num_rounds=1, device='cpu')
    square = build_latency_table(backbone, 56, BATCH, num_warmup=0, num_rounds=1, device='cpu')
    assert wide.key['img_size'] == [56, 112] and square.key['img_size'] == 56
    dense = dense_genes(DEPTHS)
    assert wide.predict(dense) > square.predict(dense)
    backbone.set_pruning_ratios(genes_to_ratios(dense, DEPTHS))
    assert wide.predict(dense) == pytest.approx(
        latency_mod.measure_backbone_latency(backbone, (56, 112), BATCH, 0, 1, 'cpu')['latency_ms'], rel=1e-9)
    assert table_key(backbone, (56, 112), BATCH, torch.device('cpu')) == wide.key
    with pytest.raises(ValueError, match='must be positive'):
        build_latency_table(backbone, (56, 0), BATCH, num_warmup=0, num_rounds=1, device='cpu')
