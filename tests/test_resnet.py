"""Polygon-sum images, ResNet-18 and its trainer, on tiny sizes (CPU).

    .venv/bin/python -m pytest -q tests/test_resnet.py
"""
import shlex

import numpy as np
import pytest
import torch
from PIL import Image

from grok_core.analysis import fit_epoch, grok_epoch, grokking_verdict
from grok_core.cli import main, resnet_command
from grok_core.resnet import polygons
from grok_core.resnet.config import ResNetConfig
from grok_core.resnet.data import crop_geometry, load_data, resize_crop
from grok_core.resnet.model import build_resnet18, load_backbone
from grok_core.resnet.shards import export_checkpoint, import_checkpoint
from grok_core.resnet.train import ResNetStore, ResNetTrainer, train_resnet

TINY = dict(image_size=32, n_images=12, frac_train=0.5, batch_size=4, eval_every=1, width=8)


# -- labels and drawing ------------------------------------------------------------------------------------
def test_label_statistics_of_the_full_set_without_drawing():
    labels = polygons.all_labels()
    assert labels.shape == (14_641,)
    values, counts = torch.unique(labels, return_counts=True)
    assert values.tolist() == [0] + list(range(3, 49))          # 47 distinct labels
    assert values[counts.argmax()] == 28 and counts.max() == 813
    assert counts[values == 0].item() == 1 and counts[values == 48].item() == 1
    assert polygons.all_symbols()[1].tolist() == [0, 0, 0, 3]   # lexicographic, last cell fastest


def near(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Rasterisation may move an edge by one pixel."""
    return all(abs(x - y) <= 1 for x, y in zip(a, b))


def dark_columns(img: Image.Image, x0: int, x1: int, y0: int, y1: int) -> tuple[int, int]:
    """First and last image column with a dark pixel inside the box [x0, x1) x [y0, y1)."""
    a = np.asarray(img.convert("L"))[y0:y1, x0:x1] < 128
    cols = np.nonzero(a.any(0))[0]
    return x0 + int(cols[0]), x0 + int(cols[-1])


def test_radius_bug_reflects_and_enlarges_three_cells_in_faithful_mode():
    assert [polygons.cell_radius(q, "faithful") for q in range(4)] == [46, -56, -56, -56]
    assert [polygons.cell_radius(q, "clean") for q in range(4)] == [46] * 4
    faithful = polygons.draw_mosaic((3, 3, 3, 3), "faithful", jpeg=False)
    clean = polygons.draw_mosaic((3, 3, 3, 3), "clean")
    # top-left: radius 46, vertex 0 points right (x = 56 + 46), flat side at x = 56 - 23
    assert near(dark_columns(faithful, 0, 112, 0, 112), (33, 102))
    assert near(dark_columns(clean, 0, 112, 0, 112), (33, 102))
    # top-right, faithful: radius -56, so vertex 0 sits on the cell border (x = 168 - 56) and the flat side at 168 + 28
    assert dark_columns(faithful, 112, 224, 0, 112)[0] == 112
    assert near(dark_columns(faithful, 112, 224, 0, 112), (112, 196))
    assert near(dark_columns(clean, 112, 224, 0, 112), (145, 214))
    # bottom-left, faithful: the reflected vertex reaches the image border
    assert dark_columns(faithful, 0, 112, 112, 224)[0] == 0


def test_faithful_mode_is_a_jpeg_round_trip_and_clean_mode_is_lossless():
    drawn = np.asarray(polygons.draw_mosaic((4, 0, 9, 12), "faithful", jpeg=False)).astype(int)
    jpeg = np.asarray(polygons.draw_mosaic((4, 0, 9, 12), "faithful")).astype(int)
    assert set(np.unique(drawn)) <= {0, 255}
    assert not np.array_equal(drawn, jpeg) and np.abs(drawn - jpeg).mean() < 10
    clean = np.asarray(polygons.draw_mosaic((4, 0, 9, 12), "clean"))
    assert set(np.unique(clean)) <= {0, 255}


def test_dictionary_entries_and_weights():
    blank = np.asarray(polygons.dictionary_image(0))
    assert blank.shape == (224, 224, 3) and blank.min() == 255
    hexagon = polygons.dictionary_image(6)
    assert near(dark_columns(hexagon, 0, 224, 0, 224), (112 - 90, 112 + 90))
    assert [polygons.dictionary_weight(s, "faithful") for s in (0, 3, 12)] == [0, 2, 11]
    assert [polygons.dictionary_weight(s, "clean") for s in (0, 3, 12)] == [0, 3, 12]


def test_render_shapes_and_downsampled_sizes():
    x = polygons.render([0, 1, 14_640], "clean", 64)
    assert x.shape == (3, 3, 64, 64) and x.dtype == torch.uint8
    assert x[0].min() == 255 and x[2].min() < 128               # blank mosaic, then four 12-gons


def test_dataset_cache_is_written_verified_and_redrawn_when_corrupt(tmp_path, monkeypatch):
    calls = []

    def fake_render_all(mode, image_size, workers=None):           # no drawing: only the cache logic is under test
        calls.append(mode)
        return torch.full((polygons.N_IMAGES, 3, image_size, image_size), len(calls), dtype=torch.uint8)

    monkeypatch.setattr(polygons, "render_all", fake_render_all)
    images, labels = polygons.load_dataset("clean", 8, root=tmp_path)
    assert len(calls) == 1 and torch.equal(labels, polygons.all_labels())
    again, _ = polygons.load_dataset("clean", 8, root=tmp_path)
    assert len(calls) == 1 and torch.equal(again, images)        # read back, not redrawn
    sub, sub_labels = polygons.load_subset([5, 7], "clean", 8, root=tmp_path)
    assert sub.shape == (2, 3, 8, 8) and torch.equal(sub_labels, polygons.all_labels()[[5, 7]])
    npy = polygons.cache_path("clean", 8, tmp_path) / "images.npy"
    raw = bytearray(npy.read_bytes())
    raw[-1] ^= 0xFF
    npy.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="damaged"):
        redrawn, _ = polygons.load_dataset("clean", 8, root=tmp_path)
    assert len(calls) == 2 and redrawn[0, 0, 0, 0] == 2
    assert polygons.load_dataset("clean", 8, root=tmp_path)[0][0, 0, 0, 0] == 2


def test_split_is_seeded_and_has_the_released_sizes():
    tr, te = polygons.train_test_split(14_641, 0.25, seed=3)
    assert (len(tr), len(te)) == (3660, 10_981)
    assert torch.equal(torch.sort(torch.cat([tr, te])).values, torch.arange(14_641))
    assert torch.equal(tr, polygons.train_test_split(14_641, 0.25, seed=3)[0])
    assert not torch.equal(tr, polygons.train_test_split(14_641, 0.25, seed=4)[0])
    ref = torch.utils.data.random_split(range(14_641), [3660, 10_981], generator=torch.Generator().manual_seed(3))
    assert tr.tolist() == list(ref[0].indices)


def test_device_resize_crop_matches_pil_within_one_level():
    img = polygons.draw_mosaic((5, 7, 3, 12), "faithful")
    ref = np.asarray(img.resize((256, 256), Image.Resampling.BILINEAR))[16:240, 16:240].astype(int)
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].contiguous()
    ours = resize_crop(x, 224)[0].permute(1, 2, 0).numpy().astype(int)
    assert np.abs(ours - ref).max() <= 1
    assert crop_geometry(224) == (256, 16) and crop_geometry(32) == (37, 2)


# -- model ----------------------------------------------------------------------------------------------------
def test_resnet18_parameter_count_and_output_shapes():
    model = build_resnet18(1000)
    assert sum(p.numel() for p in model.parameters()) == 11_689_512
    for n_classes, size in ((52, 64), (49, 32)):
        out = build_resnet18(n_classes).eval()(torch.randn(2, 3, size, size))
        assert out.shape == (2, n_classes)
    narrow = build_resnet18(49, width=8)
    assert narrow.fc.in_features == 64 and narrow(torch.randn(2, 3, 32, 32)).shape == (2, 49)


def test_init_is_seeded_and_backbone_loads_by_name():
    a, b, c = build_resnet18(52, seed=0), build_resnet18(52, seed=0), build_resnet18(52, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.conv1.weight, c.conv1.weight)
    conv = a.layer2[0].conv1.weight                       # Kaiming normal, fan-out: std sqrt(2 / (128 * 9))
    assert abs(conv.std().item() - (2 / (128 * 9)) ** 0.5) < 0.002
    loaded = load_backbone(c, build_resnet18(1000, seed=0).state_dict())
    assert "fc.weight" not in loaded and torch.equal(c.conv1.weight, a.conv1.weight)
    assert not torch.equal(c.fc.weight, a.fc.weight)


# -- config and bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,match", [(dict(mode="noisy"), r"mode='noisy' is not allowed; choose one of 'faithful', 'clean'"),
                                      (dict(image_size=100), r"image_size=100 is not allowed; .*32, 64, 96"),
                                      (dict(image_size=256), r"image_size=256 is not allowed"),
                                      (dict(frac_train=0.0), r"frac_train=0.0 is not allowed; .*\(0, 1\)"),
                                      (dict(frac_train=1.0), r"frac_train=1.0 is not allowed"),
                                      (dict(frac_train=1.5), r"frac_train=1.5 is not allowed"),
                                      (dict(n_images=5, frac_train=0.1), r"int\(frac_train \* n\) = 0"),
                                      (dict(n_classes=40), r"n_classes=40 is not allowed"),
                                      (dict(n_images=1), r"n_images=1 is not allowed"),
                                      (dict(width=0), r"width=0 is not allowed")])
def test_bad_config_raises_a_clear_error(kw, match):
    with pytest.raises(ValueError, match=match):
        ResNetConfig(**kw)


def test_bad_dataset_arguments_raise():
    with pytest.raises(ValueError, match="mode='jpeg' is not allowed"):
        polygons.draw_mosaic((0, 0, 0, 0), "jpeg")
    with pytest.raises(ValueError, match="image_size=300 is not allowed"):
        polygons.render([0], "clean", 300)
    with pytest.raises(ValueError, match=r"frac_train=1 is not allowed"):
        polygons.train_test_split(10, 1, 0)


def test_config_defaults_and_keys():
    f, c = ResNetConfig(), ResNetConfig(mode="clean")
    assert (f.n_classes, c.n_classes) == (52, 49)
    assert (f.lr, f.weight_decay, f.batch_size, f.frac_train, f.image_size) == (1e-3, 1e-4, 200, 0.25, 224)
    assert f.key() != c.key() and f.key() == ResNetConfig(n_classes=52).key()
    assert f.trajectory_key() == f.replace(n_epochs=9000).trajectory_key() != f.replace(seed=1).trajectory_key()
    assert ResNetConfig.from_dict(f.to_dict()) == f


# -- training -------------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def one_thread():
    """The tiny models here run faster on one thread than with two that must synchronise on every small op."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_data():
    cfg = ResNetConfig(n_epochs=2, **TINY)
    return cfg, load_data(cfg)


def test_resumed_training_equals_uninterrupted_training(tiny_data, tmp_path):
    cfg, data = tiny_data
    whole = ResNetTrainer(cfg, "cpu", data=data)
    whole.run()
    first = ResNetTrainer(cfg, "cpu", data=data)
    first.run(ckpt_path=tmp_path / "ck.pt", stop_at=1)
    second = ResNetTrainer(cfg, "cpu", data=data)
    assert second.resume(tmp_path / "ck.pt") and second.epoch == 1
    second.run()
    h1, h2 = whole.history(), second.history()
    for k in h1:
        if k != "elapsed_s":                       # wall-clock time is the one thing that may differ
            np.testing.assert_array_equal(h1[k], h2[k], err_msg=k)
    for (name, x), y in zip(whole.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(x, y), name
    assert list(h1["eval_epoch"]) == [1, 2] and len(h1["train_acc"]) == 2
    assert (h1["train_acc"] >= 0).all() and (h1["train_acc"] <= 1).all()


def test_train_resnet_stores_and_reuses_the_run(tiny_data, tmp_path):
    cfg, data = tiny_data
    cfg = cfg.replace(n_epochs=1)
    store = ResNetStore(tmp_path / "results")
    run = train_resnet(cfg, store, device="cpu", data=data)
    assert run.meta["epochs_per_s"] > 0 and run.meta["n_train"] == 6 and run.meta["kind"] == "resnet"
    back = store.get(cfg)
    assert back is not None and back.config == cfg
    assert store.entry(cfg.key()).parent.name == "resnet-runs" and not (store.root / "runs").exists()
    np.testing.assert_array_equal(back.history["train_acc"], run.history["train_acc"])
    assert train_resnet(cfg, store, device="cpu", data=data).meta["created"] == run.meta["created"]   # not retrained
    with pytest.raises(ValueError, match="past n_epochs"):
        ResNetTrainer(cfg.replace(n_epochs=1), "cpu", data=data).load_state_dict(
            {**torch.load(store.resnet_checkpoint(cfg), weights_only=True), "epoch": 5})


@pytest.mark.parametrize("damage,reason", [("flip", "do not match their sha256"), ("unsealed", "carries no checksum")])
def test_damaged_checkpoint_is_moved_aside_not_loaded(tiny_data, tmp_path, damage, reason):
    cfg, data = tiny_data
    ckpt = tmp_path / "resnet-x.pt"
    first = ResNetTrainer(cfg, "cpu", data=data)
    first.run(ckpt_path=ckpt, stop_at=1)
    if damage == "flip":
        raw = bytearray(ckpt.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        ckpt.write_bytes(bytes(raw))
    else:                                            # as written before checkpoints carried a seal
        torch.save(first.state_dict(), ckpt)
    fresh = ResNetTrainer(cfg, "cpu", data=data)
    with pytest.warns(UserWarning, match=reason):
        assert not fresh.resume(ckpt)
    assert fresh.epoch == 0 and not ckpt.exists()
    assert [p.name.startswith("resnet-x.pt.unusable-") for p in tmp_path.iterdir()] == [True]


def test_checkpoint_shards_round_trip_and_reject_damage(tmp_path):
    ckpt = tmp_path / "a" / "resnet-x.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(bytes(range(256)) * 9000)                   # 2.3 MB: three 1-MiB shards
    first = export_checkpoint(ckpt, tmp_path / "out1", shard_mib=1, parts=range(0, 2))
    assert [p.name for p in first] == ["resnet-x.pt.manifest.json", "resnet-x.pt.part00", "resnet-x.pt.part01"]
    assert import_checkpoint(tmp_path / "out1", tmp_path / "b") is None             # shard 2 still missing
    export_checkpoint(ckpt, tmp_path / "out2", shard_mib=1, parts=range(2, 3))
    back = import_checkpoint([tmp_path / "out1", tmp_path / "out2"], tmp_path / "b")
    assert back.read_bytes() == ckpt.read_bytes()
    (tmp_path / "out2" / "resnet-x.pt.part02").write_bytes(b"junk")
    with pytest.raises(ValueError, match="checksum"):
        import_checkpoint([tmp_path / "out1", tmp_path / "out2"], tmp_path / "c")


def test_export_files_writes_the_released_layout(tmp_path):
    out = polygons.export_files(tmp_path, "faithful", indices=[0, 1464])
    img = Image.open(out / "out-shape-img" / "1465.jpg").convert("RGB")
    assert np.array_equal(np.asarray(img), polygons.render([1464], "faithful")[0].permute(1, 2, 0).numpy())
    assert (out / "out-shape-txt" / "1465.txt").read_text() == "Total Weight: 12\n"
    assert (out / "out-shape-txt" / "1.txt").read_text() == "Total Weight: 0\n"


def test_grok_epoch_picks_the_first_evaluation_over_threshold():
    h = {"eval_epoch": np.array([1, 100, 200, 300]), "test_acc": np.array([0.1, 0.35, 0.97, 1.0])}
    assert grok_epoch(h) == 200 and grok_epoch(h, 0.99) == 300 and grok_epoch(h, 1.01) is None


def _history(fit_at: int, test_at: int | None, n: int = 4000) -> dict:
    epoch = np.arange(1, n + 1)
    train = np.where(epoch >= fit_at, 1.0, 0.2)
    ev = np.arange(20, n + 1, 20)
    test = np.where(ev >= (test_at or n + 1), 1.0, 0.3)
    return {"epoch": epoch, "train_acc": train, "eval_epoch": ev, "test_acc": test}


def test_fit_epoch_waits_for_the_window_mean():
    h = _history(100, None)
    assert fit_epoch(h, window=20) == 118      # 19 epochs at 1 and one at 0.2: mean 0.96, the first >= 0.95
    assert fit_epoch(h, window=1) == 100 and fit_epoch(_history(5000, None)) is None


@pytest.mark.parametrize("fit_at,test_at,kind", [
    (100, 2800, "grokking"),        # Fig. 7's shape: test follows 2,700 epochs later
    (400, 240, "no delay"),         # generalises before the on-the-fly train accuracy settles
    (100, 900, "no delay"),         # 800 epochs later: under the 1,000-epoch rule
    (350, None, "not reached"),
])
def test_grokking_verdict_is_a_delay_rule(fit_at, test_at, kind):
    v = grokking_verdict(_history(fit_at, test_at))
    assert v["kind"] == kind and v["generalise"] == (None if test_at is None else -(-test_at // 20) * 20)


def test_render_all_in_worker_processes_matches_render(monkeypatch):
    monkeypatch.setattr(polygons, "N_IMAGES", 9)                  # the first 9 mosaics only
    both = polygons.render_all("faithful", 32, workers=2)
    assert torch.equal(both, polygons.render(range(9), "faithful", 32))


@pytest.mark.parametrize("cfg", [ResNetConfig(), ResNetConfig(mode="clean", frac_train=0.5, n_epochs=2000, amp_bf16=True),
                                 ResNetConfig(weight_decay=1e-3, channels_last=True, image_size=64, n_images=300)])
def test_resnet_command_names_the_same_run(cfg, monkeypatch):
    cmd = resnet_command(cfg)
    assert cmd.startswith("grok resnet --mode ")
    trained = []
    monkeypatch.setattr("grok_core.resnet.train.train_resnet", lambda c, *a, **k: trained.append(c))
    assert main(["--results", "/nonexistent", *shlex.split(cmd)[1:]]) == 3      # not finished: nothing trained
    assert [c.key() for c in trained] == [cfg.key()]
