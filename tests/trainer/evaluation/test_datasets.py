"""Own datasets: npz and image folders, local and on a real S3 API, splits, digests, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.evaluation.datasets import DatasetSpec, load_dataset
from transfersearch_trainer.evaluation.digits import export_digits
from transfersearch_trainer.store import s3
from transfersearch_trainer.store.blobs import sha256_file


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_digits(tmp_path_factory.mktemp("digits") / "digits.npz")


def test_digits_round_trip_is_a_stratified_seeded_split(digits: Path) -> None:
    data = load_dataset(DatasetSpec(str(digits)))
    assert data.name == "digits"
    assert data.classes == 10
    assert (len(data.y_train), len(data.y_val)) == (1438, 359)  # round(1797 * 0.2) held out
    assert data.x_train.shape == (1438, 1, 8, 8)
    assert data.x_train.dtype == np.float32
    assert data.y_train.dtype == np.int64
    assert data.x_train.min() >= 0.0
    assert data.x_train.max() == 1.0
    everything = np.bincount(np.concatenate([data.y_train, data.y_val]))
    assert np.all(np.abs(np.bincount(data.y_val) - everything * 0.2) <= 1)  # each class ~20%

    again = load_dataset(DatasetSpec(str(digits)))
    assert again.sha256 == data.sha256
    assert np.array_equal(again.x_val, data.x_val)
    other = load_dataset(DatasetSpec(str(digits), seed=1))
    assert other.sha256 != data.sha256
    assert not np.array_equal(other.x_val, data.x_val)
    assert load_dataset(DatasetSpec(str(digits), validation_split=0.3)).sha256 != data.sha256


def test_digits_export_is_byte_identical_and_scaled_to_255(digits: Path, tmp_path: Path) -> None:
    again = export_digits(tmp_path / "again.npz")
    assert sha256_file(again) == sha256_file(digits)
    with np.load(digits) as z:
        assert z["x"].dtype == np.uint8
        assert z["x"].shape == (1797, 8, 8)
        assert int(z["x"].max()) == 255
        assert z["y"].dtype == np.int64
        assert set(z["y"].tolist()) == set(range(10))


def write_png(path: Path, value: int, size: tuple[int, int] = (6, 5), mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    color: Any = value if mode == "L" else (value, 0, 255 - value)
    Image.new(mode, size, color).save(path)


def image_folder(root: Path, classes: tuple[str, ...] = ("cat", "dog", "owl"), n: int = 4) -> Path:
    for c, name in enumerate(classes):
        for i in range(n):
            write_png(root / name / f"{i}.png", 40 * c + i)
    return root


def test_image_folder_classes_by_name_and_one_validation_image_each(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "imgs")
    (root / "README.txt").write_text("ignored")
    (root / "cat" / ".DS_Store").write_bytes(b"\0")
    data = load_dataset(DatasetSpec(str(root), validation_split=0.25))
    assert data.classes == 3
    assert data.x_train.shape == (9, 1, 5, 6)  # (N, C, H, W); PIL sizes are width x height
    assert sorted(data.y_val.tolist()) == [0, 1, 2]
    assert np.isclose(data.x_val[data.y_val == 2].min(), 80 / 255, atol=4 / 255)
    assert load_dataset(DatasetSpec(str(root), validation_split=0.25)).sha256 == data.sha256
    write_png(root / "owl" / "0.png", 200)  # one pixel value changed: another dataset
    assert load_dataset(DatasetSpec(str(root), validation_split=0.25)).sha256 != data.sha256


def test_image_folder_with_a_colour_image_is_read_as_rgb(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "imgs")
    write_png(root / "dog" / "rgb.jpg", 100, mode="RGB")
    data = load_dataset(DatasetSpec(str(root)))
    assert data.channels == 3
    assert len(data.y_train) + len(data.y_val) == 13


def test_a_given_validation_set_replaces_the_split(digits: Path, tmp_path: Path) -> None:
    with np.load(digits) as z:
        x, y = z["x"], z["y"]
    np.savez(tmp_path / "train.npz", x=x[:1500], y=y[:1500])
    np.savez(tmp_path / "val.npz", x=x[1500:], y=y[1500:])
    data = load_dataset(
        DatasetSpec(str(tmp_path / "train.npz"), validation_uri=str(tmp_path / "val.npz"))
    )
    assert (len(data.y_train), len(data.y_val)) == (1500, 297)
    assert np.array_equal(data.y_val, y[1500:])
    # the seed only matters to a split: a given validation set ignores it
    seeded = DatasetSpec(
        str(tmp_path / "train.npz"), validation_uri=str(tmp_path / "val.npz"), seed=7
    )
    assert load_dataset(seeded).sha256 == data.sha256


def test_a_validation_folder_is_labelled_by_class_name(tmp_path: Path) -> None:
    train = image_folder(tmp_path / "train")
    val = image_folder(tmp_path / "val", classes=("dog", "owl"), n=2)
    data = load_dataset(DatasetSpec(str(train), validation_uri=str(val)))
    assert data.y_val.tolist() == [1, 1, 2, 2]
    assert len(data.y_train) == 12


def npz(**arrays: Any) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        np.savez(tmp / "data.npz", **arrays)
        return tmp / "data.npz"

    return make


X10 = np.zeros((10, 4, 4), np.uint8)
Y10 = np.array([0, 1] * 5)


def text_file(tmp: Path) -> Path:
    (tmp / "data.npz").write_text("x,y\n1,2\n")
    return tmp / "data.npz"


def npy_file(tmp: Path) -> Path:
    with (tmp / "data.npz").open("wb") as f:
        np.save(f, X10)
    return tmp / "data.npz"


def folder(*files: tuple[str, int, tuple[int, int]]) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        for rel, value, size in files:
            write_png(tmp / "data" / rel, value, size)
        return tmp / "data"

    return make


def broken_png(tmp: Path) -> Path:
    root = image_folder(tmp / "data")
    (root / "dog" / "2.png").write_bytes(b"\x89PNG not really")
    return root


def empty_class(tmp: Path) -> Path:
    root = image_folder(tmp / "data")
    (root / "yak").mkdir()
    return root


BAD: list[tuple[str, Callable[[Path], Path], dict[str, Any], str]] = [
    ("missing", lambda tmp: tmp / "data.npz", {}, "no such file"),
    ("not a zip", text_file, {}, "not an .npz file"),
    ("a .npy", npy_file, {}, "a single .npy array, not an .npz"),
    ("no y", npz(x=X10), {}, "no array named 'y' (found: x)"),
    ("lengths", npz(x=X10, y=Y10[:9]), {}, "x has 10 images but y has 9 labels"),
    ("float labels", npz(x=X10, y=Y10.astype(float)), {}, "labels y must be integers"),
    ("1..10", npz(x=X10, y=np.arange(1, 11)), {}, "labels must be 0..C-1"),
    ("gap", npz(x=X10, y=np.array([0, 2] * 5)), {}, "found 0..2 without 1: renumber"),
    ("one class", npz(x=X10, y=np.zeros(10, int)), {}, "one class only"),
    ("rank", npz(x=np.zeros((10, 16)), y=Y10), {}, "x has shape (10, 16)"),
    ("channels first", npz(x=np.zeros((10, 3, 8, 8)), y=Y10), {}, "x.transpose(0, 2, 3, 1)"),
    ("nan", npz(x=np.full((10, 4, 4), np.nan), y=Y10), {}, "NaN or infinite values"),
    ("negative", npz(x=np.full((10, 4, 4), -1.0), y=Y10), {}, "negative values"),
    ("no images", npz(x=X10[:0], y=Y10[:0]), {}, "x holds no images"),
    (
        "empty split",
        npz(x=X10[:2], y=np.array([0, 1])),
        {},
        "the validation split is empty",
    ),
    ("split 0", npz(x=X10, y=Y10), {"validation_split": 0.0}, "validation_split must be"),
    ("unreadable", broken_png, {}, "dog/2.png: unreadable image"),
    (
        "sizes",
        folder(("a/0.png", 1, (6, 5)), ("a/1.png", 1, (6, 5)), ("b/0.png", 1, (7, 5))),
        {},
        "b/0.png is 7x5 but",
    ),
    ("one folder", folder(("a/0.png", 1, (6, 5)), ("a/1.png", 1, (6, 5))), {}, "one class folder"),
    ("empty class", empty_class, {}, "yak: class folder without .png/.jpg images"),
    ("format", text_file, {"format": "csv"}, "use one of npz, imagefolder, auto"),
]


@pytest.mark.parametrize(
    ("make", "extra", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_data_is_one_line_naming_the_file(
    tmp_path: Path, make: Callable[[Path], Path], extra: dict[str, Any], message: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(TransferSearchError) as err:
        load_dataset(DatasetSpec(str(path), **extra))
    text = str(err.value)
    assert message in text
    assert "\n" not in text
    if extra.get("format") is None:
        assert str(path) in text


def val_npz(**arrays: Any) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        np.savez(tmp / "val.npz", **arrays)
        return tmp / "val.npz"

    return make


@pytest.mark.parametrize(
    ("make_val", "message"),
    [
        (val_npz(x=np.zeros((4, 5, 5), np.uint8), y=Y10[:4]), "validation images are 1x5x5"),
        (val_npz(x=X10[:4], y=np.array([0, 1, 2, 1])), "labels must be 0..1 like the training"),
    ],
)
def test_a_validation_file_that_does_not_fit_is_refused(
    tmp_path: Path, make_val: Callable[[Path], Path], message: str
) -> None:
    train = npz(x=X10, y=Y10)(tmp_path)
    val = make_val(tmp_path)
    with pytest.raises(TransferSearchError, match="val.npz: ") as err:
        load_dataset(DatasetSpec(str(train), validation_uri=str(val)))
    assert message in str(err.value)


def test_a_validation_folder_with_an_unknown_class_is_refused(tmp_path: Path) -> None:
    train = image_folder(tmp_path / "train")
    val = image_folder(tmp_path / "val", classes=("cat", "emu"), n=1)
    with pytest.raises(TransferSearchError, match=r"val/emu: a class the training folder"):
        load_dataset(DatasetSpec(str(train), validation_uri=str(val)))


# --- s3:// against a real S3 API (moto in server mode) ---------------------------------


@pytest.fixture
def bucket(s3_env: str) -> str:
    name = f"data-{uuid.uuid4().hex[:8]}"
    s3.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def gets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys of every GetObject the product's S3 clients send."""
    seen: list[str] = []
    real = s3.client

    def counting(endpoint: str | None = None) -> Any:
        c = real(endpoint)
        c.meta.events.register(
            "before-call.s3.GetObject", lambda params, **_: seen.append(params["url_path"])
        )
        return c

    monkeypatch.setattr(s3, "client", counting)
    return seen


def test_s3_npz_is_downloaded_once_and_a_damaged_cache_is_replaced(
    bucket: str, gets: list[str], digits: Path, tmp_path: Path
) -> None:
    s3.client().put_object(Bucket=bucket, Key="sets/digits.npz", Body=digits.read_bytes())
    spec = DatasetSpec(f"s3://{bucket}/sets/digits.npz")
    first = load_dataset(spec)
    local = load_dataset(DatasetSpec(str(digits)))
    assert first.sha256 == local.sha256  # the bytes are the identity, not where they live
    assert len(gets) == 1
    cached = Path(os.environ["TRANSFERSEARCH_CACHE"]) / "datasets" / bucket / "sets/digits.npz"
    assert json.loads(cached.with_name("digits.npz.meta.json").read_text())["sha256"] == (
        sha256_file(digits)
    )

    assert load_dataset(spec).sha256 == first.sha256
    assert len(gets) == 1  # reused: no second download

    damaged = bytearray(cached.read_bytes())
    damaged[100] ^= 0xFF
    cached.write_bytes(bytes(damaged))
    assert load_dataset(spec).sha256 == first.sha256
    assert len(gets) == 2  # fetched again, and verified
    assert sha256_file(cached) == sha256_file(digits)

    mine = tmp_path / "my-cache"
    assert load_dataset(spec, cache_dir=mine).sha256 == first.sha256
    assert (mine / bucket / "sets" / "digits.npz").is_file()


def test_s3_image_folder_follows_the_prefix(bucket: str, gets: list[str], tmp_path: Path) -> None:
    root = image_folder(tmp_path / "imgs")
    for path in sorted(root.rglob("*.png")):
        key = f"pets/{path.relative_to(root).as_posix()}"
        s3.client().put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    spec = DatasetSpec(f"s3://{bucket}/pets/")
    data = load_dataset(spec)
    assert data.classes == 3
    assert len(data.y_train) + len(data.y_val) == 12
    assert data.sha256 == load_dataset(DatasetSpec(str(root))).sha256
    assert len(gets) == 12
    assert load_dataset(spec).sha256 == data.sha256
    assert len(gets) == 12

    s3.client().delete_object(Bucket=bucket, Key="pets/owl/3.png")
    fewer = load_dataset(spec)
    assert len(fewer.y_train) + len(fewer.y_val) == 11  # the deleted image is gone locally too
    assert len(gets) == 12


def test_a_missing_s3_object_is_one_line(bucket: str) -> None:
    with pytest.raises(TransferSearchError, match=rf"s3://{bucket}/nope.npz: not found in S3"):
        load_dataset(DatasetSpec(f"s3://{bucket}/nope.npz"))
    with pytest.raises(TransferSearchError, match="no .png/.jpg objects under this prefix"):
        load_dataset(DatasetSpec(f"s3://{bucket}/nothing/"))


# --- the command line, as users run it -----------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "transfersearch_trainer.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
        timeout=120,
    )


def test_cli_exports_and_inspects_the_digits(tmp_path: Path) -> None:
    out = cli("datasets", "export", "digits", "--out", str(tmp_path / "d.npz"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "d.npz").is_file()
    out = cli("datasets", "inspect", str(tmp_path / "d.npz"), "--json")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["train"] == 1438
    assert shown["validation"] == 359
    assert shown["shape"] == [1, 8, 8]
    assert shown["classes"] == 10
    assert shown["sha256"] == load_dataset(DatasetSpec(str(tmp_path / "d.npz"))).sha256


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("datasets", "inspect", "/no/such/data.npz"), "/no/such/data.npz: no such file"),
        (("datasets", "export", "digits", "--out", "digits.csv"), "digits.csv: name the file"),
    ],
)
def test_cli_errors_are_one_line_without_a_traceback(args: tuple[str, ...], message: str) -> None:
    out = cli(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr + out.stdout
