from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from transfersearch_trainer.api.errors import BenchmarkDataError, TransferSearchError
from transfersearch_trainer.api.tasks import TASK_INFO, TASKS
from transfersearch_trainer.benchmark import loaders
from transfersearch_trainer.benchmark.loaders import (
    load_benchmark,
    load_csv,
    load_file,
    load_naslib_zip,
)

# The data README's reference figures (micro space).
MICRO_OPTIMA = {
    "class_object": (45.586, "64-41414-3_13_113"),
    "class_scene": (54.936, None),
    "jigsaw": (95.372, None),
    "room_layout": (-0.6010, None),
    "segmentsemantic": (94.613, None),
    "normal": (0.5873, None),
    "autoencoder": (0.5772, None),
}
MICRO_MEDIANS = {
    "class_object": 42.21,
    "class_scene": 52.08,
    "jigsaw": 90.79,
    "room_layout": -0.7085,
    "segmentsemantic": 94.18,
    "normal": 0.5398,
    "autoencoder": 0.4619,
}


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    loaders._load_cached.cache_clear()


@pytest.mark.parametrize("space", ["micro", "macro"])
def test_csv_and_zip_hold_the_same_table(data_dir: Path, space: str) -> None:
    a = load_csv(data_dir / loaders.CSV_NAME.format(space=space), space)  # type: ignore[arg-type]
    b = load_naslib_zip(data_dir / loaders.ZIP_NAMES[space], space)  # type: ignore[arg-type]
    assert a.values.shape == (7, 4096 if space == "micro" else 3256)
    np.testing.assert_array_equal(a.values, b.values)


def test_micro_reference_figures(data_dir: Path) -> None:
    bench = load_benchmark(data_dir, "micro")
    for task, (optimum, arch) in MICRO_OPTIMA.items():
        stats = bench.stats(task)
        assert round(stats.optimum, 3 if abs(optimum) > 1 else 4) == optimum
        assert abs(stats.median - MICRO_MEDIANS[task]) < 0.006
        if arch:
            assert stats.optimum_arch == arch
    # a query is an array lookup at the canonical index
    i = bench.space.index("64-41414-3_13_113")
    assert bench.metric("class_object")[i] == bench.stats("class_object").optimum


def test_data_from_environment_variable(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSFERSEARCH_DATA", str(data_dir))
    assert load_benchmark(None, "macro").space.size == 3256
    monkeypatch.delenv("TRANSFERSEARCH_DATA")
    with pytest.raises(TransferSearchError, match="--data"):
        load_benchmark(None, "micro")


def _official_db(bench: loaders.Benchmark, epochs: int = 3) -> dict[str, object]:
    """A database in the official API's layout: data[space][arch][task]['metrics'][name]."""
    rng = np.random.default_rng(0)
    data: dict[str, dict[str, object]] = {}
    for i in range(bench.space.size):
        per_task = {}
        for t, task in enumerate(TASKS):
            final = float(bench.values[t, i])
            curve = [final - abs(x) for x in rng.normal(0, 0.5, epochs - 1)] + [final]
            if i % 3 == 0:  # numpy-based tools write numpy scalars; they must load too
                curve = [np.float32(x) for x in curve[:-1]] + [np.float64(final)]
            else:
                curve = [float(x) for x in curve]
            if i % 2:  # on odd architectures the best epoch is an earlier one
                curve[0] = final + 1.0
            per_task[task] = {
                "metrics": {TASK_INFO[task].pth_metric: curve, "train_loss": [1.0] * epochs},
                "model_info": {"model_params": 1.0},
                "total_epochs": epochs,
            }
        data[bench.space.arch_str(i)] = per_task
    return {
        "metrics_dict": {t: [TASK_INFO[t].pth_metric] for t in TASKS},
        "info_names": ["model_params"],
        "task_list": list(TASKS),
        "data": {bench.space.name: data},
    }


@pytest.mark.parametrize("space", ["micro", "macro"])
def test_official_pth_final_and_best(data_dir: Path, tmp_path: Path, space: str) -> None:
    ref = load_benchmark(data_dir, space)
    import torch

    pth = tmp_path / loaders.OFFICIAL_PTH
    torch.save(_official_db(ref), pth)
    final = load_file(pth, space, "final")  # type: ignore[arg-type]
    np.testing.assert_allclose(final.values, ref.values)
    best = load_benchmark(tmp_path, space, mode="best")
    odd = np.arange(ref.space.size) % 2 == 1
    np.testing.assert_allclose(best.values[:, odd], ref.values[:, odd] + 1.0)
    np.testing.assert_allclose(best.values[:, ~odd], ref.values[:, ~odd])


class _OpensAFile:
    """Unpickling this runs open(path, 'w'): the kind of payload a hostile file carries."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def test_pth_refuses_arbitrary_pickles(tmp_path: Path) -> None:
    import torch

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"data": {"micro": {"x": _OpensAFile(marker)}}}, path)
    with pytest.raises(BenchmarkDataError, match="never unpickled"):
        load_file(path, "micro")
    assert not marker.exists()


def test_pth_with_missing_architectures(data_dir: Path, tmp_path: Path) -> None:
    import torch

    ref = load_benchmark(data_dir, "macro")
    path = tmp_path / "short.pth"
    db = _official_db(ref, epochs=1)
    db["data"]["macro"].pop("64-2243-basic")  # type: ignore[index]
    torch.save(db, path)
    with pytest.raises(BenchmarkDataError, match=r"3255 of 3256 .*64-2243-basic"):
        load_file(path, "macro")
    with pytest.raises(BenchmarkDataError, match="no 'micro' search space"):
        load_file(path, "micro")


def _copy(data_dir: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copy(data_dir / name, target)
    target.chmod(0o644)
    return target


def test_truncated_csv(data_dir: Path, tmp_path: Path) -> None:
    path = _copy(data_dir, tmp_path, "tnb101_micro_final_valid.csv")
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-96]) + "\n")
    with pytest.raises(BenchmarkDataError, match=r"has 4000 of 4096 micro architectures"):
        load_csv(path, "micro")
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:30] + "\n")
    with pytest.raises(BenchmarkDataError, match="wrong number of fields"):
        load_csv(path, "micro")


def test_csv_with_nan_unknown_task_and_duplicates(data_dir: Path, tmp_path: Path) -> None:
    path = _copy(data_dir, tmp_path, "tnb101_micro_final_valid.csv")
    lines = path.read_text().splitlines()
    broken = lines[5].rsplit(",", 1)[0] + ",nan"
    path.write_text("\n".join([*lines[:5], broken, *lines[6:]]) + "\n")
    with pytest.raises(BenchmarkDataError, match=r"line 6: .*autoencoder.*NaN"):
        load_csv(path, "micro")
    path.write_text("\n".join([lines[0].replace("jigsaw", "jigsaw2"), *lines[1:]]) + "\n")
    with pytest.raises(BenchmarkDataError, match="unknown column.*jigsaw2"):
        load_csv(path, "micro")
    path.write_text("\n".join([*lines, lines[1]]) + "\n")
    with pytest.raises(BenchmarkDataError, match="appears twice"):
        load_csv(path, "micro")


def test_macro_csv_read_as_micro_names_the_problem(data_dir: Path) -> None:
    with pytest.raises(
        BenchmarkDataError, match="cannot read architecture .64-232323-basic. for the micro space"
    ):
        load_csv(data_dir / "tnb101_macro_final_valid.csv", "micro")


def test_truncated_and_wrong_zip(data_dir: Path, tmp_path: Path) -> None:
    path = _copy(data_dir, tmp_path, "all_benchmarks_zen.zip")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BenchmarkDataError, match="not a readable zip"):
        load_naslib_zip(path, "micro")
    with pytest.raises(BenchmarkDataError, match="no 'zen/benchmark--transbench101_macro"):
        load_naslib_zip(data_dir / "all_benchmarks_zen.zip", "macro")
    # one task's list dropped: that task is incomplete
    short = tmp_path / "short.zip"
    with (
        zipfile.ZipFile(data_dir / "all_benchmarks_zen.zip") as src,
        zipfile.ZipFile(short, "w") as dst,
    ):
        for name in src.namelist():
            if "jigsaw--0.json" not in name:
                dst.writestr(name, src.read(name))
    with pytest.raises(BenchmarkDataError, match=r"task jigsaw has 3096 of 4096"):
        load_naslib_zip(short, "micro")


def test_checksum_mismatch_is_refused(data_dir: Path, tmp_path: Path) -> None:
    path = _copy(data_dir, tmp_path, "tnb101_micro_final_valid.csv")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{digest}  {path.name}\n")
    assert load_benchmark(tmp_path, "micro").space.size == 4096
    loaders._load_cached.cache_clear()
    path.write_text(path.read_text().replace("42.7597541809082", "42.7597541809083"))
    with pytest.raises(BenchmarkDataError, match="does not match"):
        load_benchmark(tmp_path, "micro")


def _edited_copy(data_dir: Path, tmp_path: Path) -> tuple[Path, str]:
    """The micro CSV with one value changed to 99.9, and the real file's sha256."""
    path = _copy(data_dir, tmp_path, "tnb101_micro_final_valid.csv")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_text(path.read_text().replace("42.7597541809082", "99.9", 1))
    return path, digest


@pytest.mark.parametrize(
    "sums",
    [
        "{digest} tnb101_micro_final_valid.csv\n",  # one space: not sha256sum's format
        "{digest}\n",
        "sha256:{digest}  tnb101_micro_final_valid.csv\n",
        "{short}  tnb101_micro_final_valid.csv\n",
        "# sha256sum output\n{digest}  tnb101_micro_final_valid.csv\nsee README.md\n",
    ],
)
def test_a_malformed_sha256sums_is_an_error(data_dir: Path, tmp_path: Path, sums: str) -> None:
    _, digest = _edited_copy(data_dir, tmp_path)
    (tmp_path / "SHA256SUMS").write_text(sums.format(digest=digest, short=digest[:40]))
    with pytest.raises(BenchmarkDataError, match=r"SHA256SUMS: line \d is not") as info:
        load_benchmark(tmp_path, "micro")
    assert "\n" not in str(info.value)


def test_a_sha256sums_without_the_file_is_an_error(data_dir: Path, tmp_path: Path) -> None:
    path, digest = _edited_copy(data_dir, tmp_path)
    real_sums = (data_dir / "SHA256SUMS").read_text()
    others = "".join(ln + "\n" for ln in real_sums.splitlines() if path.name not in ln)
    (tmp_path / "SHA256SUMS").write_text(others)
    with pytest.raises(BenchmarkDataError, match="has no line for tnb101_micro_final_valid.csv"):
        load_benchmark(tmp_path, "micro")
    loaders._load_cached.cache_clear()
    (tmp_path / "SHA256SUMS").write_text(
        f"{digest}  {path.name}\n{'0' * 64}  {path.name}\n"  # two different digests
    )
    with pytest.raises(BenchmarkDataError, match="a second, different sha256"):
        load_benchmark(tmp_path, "micro")


def test_only_a_missing_sha256sums_turns_verification_off(data_dir: Path, tmp_path: Path) -> None:
    path, digest = _edited_copy(data_dir, tmp_path)
    assert 99.9 in load_benchmark(tmp_path, "micro").metric("class_object")  # unverified
    for sums in (
        f"# comment\n\n{digest}  {path.name}\n",  # comments and blank lines, as sha256sum -c
        f"{digest} *{path.name}\n",  # binary mode
        f"SHA256 ({path.name}) = {digest.upper()}\n",  # sha256sum --tag
    ):
        loaders._load_cached.cache_clear()
        (tmp_path / "SHA256SUMS").write_text(sums)
        with pytest.raises(BenchmarkDataError, match="does not match"):
            load_benchmark(tmp_path, "micro")


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkDataError, match="no such file or folder"):
        load_benchmark(tmp_path / "nowhere", "micro")
    with pytest.raises(BenchmarkDataError, match="no benchmark file for the micro space"):
        load_benchmark(tmp_path, "micro")
    with pytest.raises(BenchmarkDataError, match="only the .pth file has"):
        load_benchmark(tmp_path, "micro", mode="best")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(BenchmarkDataError, match="unknown benchmark file type"):
        load_benchmark(tmp_path / "x.txt", "micro")


def test_unknown_task_lookup(data_dir: Path) -> None:
    bench = load_benchmark(data_dir, "micro")
    with pytest.raises(TransferSearchError, match="unknown task 'imagenet'"):
        bench.metric("imagenet")


def test_load_from_s3_and_cache(data_dir: Path, s3_env: str, tmp_path: Path) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_env)
    client.create_bucket(Bucket="bench")
    for name in ("tnb101_micro_final_valid.csv", "SHA256SUMS", "README.md"):
        client.upload_file(str(data_dir / name), "bench", f"tnb101/{name}")
    local = load_benchmark(data_dir, "micro")
    remote = load_benchmark("s3://bench/tnb101", "micro")
    np.testing.assert_array_equal(local.values, remote.values)
    cached = tmp_path / "cache" / "data" / "bench" / "tnb101" / "tnb101_micro_final_valid.csv"
    assert cached.is_file()
    assert not (cached.parent / "README.md").exists()  # only data files are fetched
    mtime = cached.stat().st_mtime_ns
    loaders._load_cached.cache_clear()
    load_benchmark("s3://bench/tnb101/tnb101_micro_final_valid.csv", "micro")
    load_benchmark("s3://bench/tnb101", "micro")
    assert cached.stat().st_mtime_ns == mtime  # second read came from the cache
    with pytest.raises(TransferSearchError, match="no benchmark files under this prefix"):
        load_benchmark("s3://bench/empty", "micro")
    with pytest.raises(TransferSearchError, match="bucket does not exist"):
        load_benchmark("s3://nobucket/x", "micro")


def test_unreachable_s3_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("TRANSFERSEARCH_S3_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("TRANSFERSEARCH_CACHE", str(tmp_path))
    monkeypatch.setenv("TRANSFERSEARCH_S3_RETRY_SECONDS", "0.5")  # transient: retried until then
    with pytest.raises(TransferSearchError, match="cannot reach the S3 endpoint") as info:
        load_benchmark("s3://bench/tnb101", "micro")
    assert info.value.exit_code == 75


def test_s3_credentials_in_urls_never_reach_messages_or_logs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.conftest import free_port

    secret = "wJalrXUtnFEMI"
    monkeypatch.setenv(
        "TRANSFERSEARCH_S3_ENDPOINT", f"http://AKIA:{secret}@127.0.0.1:{free_port()}"
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("TRANSFERSEARCH_CACHE", str(tmp_path))
    monkeypatch.setenv("TRANSFERSEARCH_S3_RETRY_SECONDS", "0.5")
    with pytest.raises(TransferSearchError, match=r"endpoint http://\*\*\*@127\.0\.0\.1") as info:
        load_benchmark("s3://bench/tnb101", "micro")
    assert secret not in str(info.value)
    with pytest.raises(TransferSearchError, match="credentials do not belong") as info:
        load_benchmark(f"s3://AKIA:{secret}@bench/tnb101", "micro")
    assert secret not in str(info.value)
    assert secret not in caplog.text
