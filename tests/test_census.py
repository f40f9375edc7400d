"""hfge census: rows (planner/census.py), the runner's cache and threads, the dataset and its card, the Hub
listing and upload (against the loopback Hub), and docs/census.md in step with its data."""

from __future__ import annotations

import importlib.util
import json
import shutil
import warnings
from pathlib import Path

import pytest

from hf_gpu_estimator.census import CACHE_FILE, census_rows, read_rows, run_census, write_dataset
from hf_gpu_estimator.errors import InvalidArgumentError
from hf_gpu_estimator.planner.census import GPU_CLASSES_GB, class_capacity_bytes, parse_jobs
from hf_gpu_estimator.sources.catalog import list_models
from hf_gpu_estimator.sources.catalog import lookup
from hf_gpu_estimator.sources.census import ModelRef

ROOT = Path(__file__).resolve().parents[1]
GPUS = ("RTX-4090", "H100-SXM-80GB")


def test_jobs_parse_with_their_defaults_and_keep_gguf_names_whole() -> None:
    jobs = parse_jobs("inference:ctx=8192:quant=gguf:Q4_K_M,qlora:ctx=1024:gc=1,full")
    assert [j.name for j in jobs] == ["inference:ctx=8192:quant=gguf:Q4_K_M", "qlora:ctx=1024:gc=1", "full"]
    assert jobs[0].options == {"batch_size": 1, "new_tokens": 256, "seq_len": 8192 - 256, "quantization": "gguf:Q4_K_M"}
    assert jobs[1].options["gradient_checkpointing"] is True and jobs[1].options["lora_targets"] == "all-linear"
    assert len(parse_jobs()) == 6


@pytest.mark.parametrize("text", ["serve:ctx=10", "inference:context=10", "inference:ctx=x", "lora:quant=int3"])
def test_a_bad_job_is_a_bad_argument(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="jobs"):
        parse_jobs(text)


def test_a_row_is_the_estimate_and_the_planner_answer() -> None:
    from hf_gpu_estimator import estimate

    spec = lookup("meta-llama/Llama-2-7b-hf")
    (row,) = census_rows(spec, parse_jobs("inference:ctx=2048"), gpus=GPUS)
    est = estimate(spec, batch_size=1, seq_len=2048 - 256, new_tokens=256)
    assert row.source == "catalog" and row.parameters == spec.parameters.total == 6_738_415_616
    assert (row.memory_low_bytes, row.memory_high_bytes) == est.device_total_range_bytes
    assert row.memory_bytes == est.memory.device_total_bytes
    assert row.min_gpus == {g: est.min_gpus(g) for g in GPUS}
    # The smallest class whose capacity holds the high end with the 5 % margin, and not the one below.
    at = GPU_CLASSES_GB.index(row.gpu_class_gb)
    assert est.verdict("RTX-4090").fits == (row.gpu_class_gb <= 24)
    assert row.memory_high_bytes <= class_capacity_bytes(row.gpu_class_gb) * 0.95
    assert at == 0 or row.memory_high_bytes > class_capacity_bytes(GPU_CLASSES_GB[at - 1]) * 0.95
    assert row.cheapest_gpu == "RTX-4090" and row.cheapest_usd_per_hour == pytest.approx(0.6)
    assert row.usd_per_million_tokens == pytest.approx(0.6 / (row.tokens_per_s * 3600) * 1e6)


def test_a_refused_job_and_an_unreadable_model_are_rows() -> None:
    jobs = parse_jobs("inference:ctx=4096,lora:ctx=512")
    census = run_census([ModelRef(id="openai-community/gpt2"), ModelRef(id="no-such/model")], jobs, gpus=GPUS,
                        offline=True)
    gpt2_long, gpt2_lora, missing, _ = census.rows
    assert gpt2_long.source == "refused" and "max_position_embeddings" in gpt2_long.reason
    assert gpt2_lora.source == "catalog" and gpt2_lora.trainable_parameters > 0
    assert missing.source == "refused" and missing.reason.startswith("ModelNotFoundError")
    assert missing.min_gpus == dict.fromkeys(GPUS)


def test_an_interrupted_census_resumes_from_its_cache(tmp_path: Path) -> None:
    jobs = parse_jobs("inference:ctx=1024")
    refs = [ModelRef(id="openai-community/gpt2"), ModelRef(id="Qwen/Qwen2.5-0.5B")]
    first = run_census(refs[:1], jobs, gpus=GPUS, offline=True, cache_dir=tmp_path)
    with (tmp_path / CACHE_FILE).open("a") as f:
        f.write('{"fingerprint": "cut sh')  # a line cut short by the interruption

    seen: list[str] = []

    def resolve(model_id: str):  # type: ignore[no-untyped-def]
        seen.append(model_id)
        return lookup(model_id)

    again = run_census(refs, jobs, gpus=GPUS, cache_dir=tmp_path, resolve=resolve)
    assert seen == ["Qwen/Qwen2.5-0.5B"] and again.resumed == 1
    assert again.rows[0] == first.rows[0]
    other_grid = run_census(refs, jobs, gpus=("L4",), cache_dir=tmp_path, resolve=resolve)
    assert other_grid.resumed == 0


def test_an_interrupt_keeps_the_finished_models_for_the_next_run(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    refs = [ModelRef(id="openai-community/gpt2"), ModelRef(id="Qwen/Qwen2.5-0.5B")]
    jobs = parse_jobs("inference:ctx=512")

    def interrupted(model_id: str):  # type: ignore[no-untyped-def]
        if model_id == "Qwen/Qwen2.5-0.5B":
            raise KeyboardInterrupt
        return lookup(model_id)

    with pytest.raises(KeyboardInterrupt):
        run_census(refs, jobs, gpus=GPUS, cache_dir=tmp_path, resolve=interrupted, progress=True)
    assert "\rcensus [" in capsys.readouterr().err  # the progress line
    again = run_census(refs, jobs, gpus=GPUS, cache_dir=tmp_path, offline=True)
    assert again.resumed == 1 and [r.model for r in again.rows] == [r.id for r in refs]


def test_threads_and_processes_give_the_rows_of_a_sequential_run() -> None:
    refs = [ModelRef(id=i) for i in ("openai-community/gpt2", "Qwen/Qwen2.5-0.5B", "meta-llama/Llama-2-7b-hf")]
    jobs = parse_jobs("inference:ctx=1024,qlora:ctx=512")
    sequential = run_census(refs, jobs, gpus=GPUS, offline=True, workers=1, processes=1).rows
    assert run_census(refs, jobs, gpus=GPUS, offline=True, workers=3, processes=1).rows == sequential
    assert run_census(refs, jobs, gpus=GPUS, offline=True, workers=2, processes=2).rows == sequential


def test_an_exact_job_traces_the_model() -> None:
    pytest.importorskip("torch")
    # 256 tokens: a context where the analytic device total (2 MiB segments) is not the traced one, so the row
    # shows which it holds.
    (job,) = parse_jobs("inference:ctx=256:new=8:mode=exact")
    assert job.mode == "exact" and "mode" not in job.options
    from hf_gpu_estimator import estimate

    spec = lookup("openai-community/gpt2")
    (row,) = census_rows(spec, (job,), gpus=GPUS)
    traced = estimate(spec, mode="exact", batch_size=1, seq_len=248, new_tokens=8)
    assert row.memory_bytes == traced.memory.device_total_bytes != estimate(spec, batch_size=1, seq_len=248,
                                                                              new_tokens=8).memory.device_total_bytes
    with pytest.raises(InvalidArgumentError, match="mode= analytic or exact"):
        parse_jobs("inference:mode=fast")


@pytest.mark.slow
def test_the_ray_backend_gives_the_rows_of_a_local_run() -> None:
    """Each model a Ray task on a local Ray instance (Ray 2.x has no in-process local mode any more): the same
    rows as the local backend, an exact-mode job included, and a refused model still a row."""
    pytest.importorskip("ray")
    pytest.importorskip("torch")
    refs = [ModelRef(id="openai-community/gpt2"), ModelRef(id="Qwen/Qwen2.5-0.5B"), ModelRef(id="no-such/model")]
    jobs = parse_jobs("inference:ctx=1024,inference:ctx=64:new=8:mode=exact")
    local = run_census(refs, jobs, gpus=GPUS, offline=True, workers=1, processes=1).rows
    assert run_census(refs, jobs, gpus=GPUS, offline=True, backend="ray").rows == local
    with pytest.raises(InvalidArgumentError, match="backend"):
        run_census(refs, jobs, gpus=GPUS, offline=True, backend="dask")


def test_the_dataset_round_trips_and_its_card_names_columns_units_versions_and_grid(tmp_path: Path) -> None:
    refs = [ModelRef(id="openai-community/gpt2"), ModelRef(id="no-such/model"), ModelRef(id="meta-llama/Llama-3.1-70B")]
    census = run_census(refs, parse_jobs("inference:ctx=1024,full:ctx=512,inference:ctx=1024:quant=gguf:Q4_K_M"),
                        gpus=GPUS, offline=True, models="ids.txt")
    assert len(census.rows[-1].notes) == 1 and "; " in census.rows[-1].notes[0]  # llama.cpp on 2 x RTX-4090
    written = write_dataset(census, tmp_path, plots=importlib.util.find_spec("matplotlib") is not None)
    assert read_rows(tmp_path / "census.csv") == census.rows
    card = (tmp_path / "README.md").read_text()
    assert card.startswith("---\npretty_name:") and "configs:" in card and "path: census" in card
    for needle in ("`memory_high_bytes` | int64 | bytes", "hf-gpu-estimator: 0.", "transformers:", "`full:ctx=512`",
                   "RTX-4090, H100-SXM-80GB", census.date, "24 GB: 21.99 GiB"):
        assert needle in card, needle
    assert (tmp_path / "census.parquet").exists() == (importlib.util.find_spec("pyarrow") is not None)
    names = {p.name for p in written}
    if importlib.util.find_spec("matplotlib") is not None:
        assert {"census-memory-vs-parameters.png", "census-share-by-gpu-class.png", "census-cheapest-gpu.png"} <= names
        assert "census-demand-by-release.png" not in names  # no release dates offline


def test_cli_census_of_a_file_of_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hf_gpu_estimator.cli import main

    ids = tmp_path / "ids.txt"
    ids.write_text("# two models\nopenai-community/gpt2\n\nQwen/Qwen2.5-0.5B  # a comment\n")
    out = tmp_path / "out"
    code = main(["census", "--models", str(ids), "--jobs", "inference:ctx=1024", "--gpus", "RTX-4090,L4",
                 "--output", str(out), "--no-plots", "--workers", "2"])
    stdout = capsys.readouterr().out
    assert code == 0 and stdout.count("\n") == 1
    assert stdout.startswith("census: 2 models x 1 jobs = 2 rows (0 refused)")
    assert [r.model for r in read_rows(out / "census.csv")] == ["openai-community/gpt2", "Qwen/Qwen2.5-0.5B"]
    assert main(["census", "--models", str(ids), "--jobs", "serve", "--output", str(out)]) == 2
    assert main(["census", "--models", str(tmp_path / "missing.txt"), "--output", str(out)]) == 2


@pytest.fixture
def listed_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_hf_home: Path):  # type: ignore[no-untyped-def]
    """A stand-in serving three text-generation repos (one broken) and one of another tag."""
    import hub_server
    from conftest import _patch_hub_constants

    root = tmp_path / "hub"
    listing = {"tiny-llama": {"likes": 5, "downloads": 10, "createdAt": "2024-04-18T00:00:00.000Z"},
               "tiny-gpt2": {"likes": 9, "downloads": 1, "createdAt": "2019-02-01T00:00:00.000Z"},
               "bad-config": {"likes": 7, "downloads": 99, "createdAt": "2023-01-01T00:00:00.000Z"},
               "tiny-qwen2-sharded": {"likes": 100, "downloads": 100, "pipeline_tag": "feature-extraction"}}
    for name, meta in listing.items():
        shutil.copytree(hub_server.DATA / "hfge-test" / name, root / "hfge-test" / name)
        (root / "hfge-test" / name / "_repo.json").write_text(json.dumps({"pipeline_tag": "text-generation", **meta}))
    server = hub_server.start(root=root)
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    _patch_hub_constants(monkeypatch, home=isolated_hf_home, endpoint=server.endpoint, offline=False)
    yield server
    server.stop()


def test_hub_top_n_by_likes_with_release_dates_and_a_broken_repo_row(listed_hub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from hf_gpu_estimator.sources.census import model_refs

    refs = model_refs("hub:text-generation:3", sort="likes")
    assert [r.id for r in refs] == ["hfge-test/tiny-gpt2", "hfge-test/bad-config", "hfge-test/tiny-llama"]
    assert refs[0].created_at.startswith("2019-02-01")
    assert [r.id for r in model_refs("hub:text-generation:1")] == ["hfge-test/bad-config"]  # by downloads
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        census = run_census(refs, parse_jobs("inference:ctx=48:new=16"), gpus=GPUS, workers=3)  # tiny-gpt2: 64 positions
    gpt2, broken, llama = census.rows
    assert gpt2.source == "family" and llama.source == "family" and llama.created_at.startswith("2024-04-18")
    assert broken.source == "refused" and broken.reason.startswith("MalformedConfigError")
    if importlib.util.find_spec("matplotlib") is not None:
        from hf_gpu_estimator.census_plots import demand_by_release

        assert demand_by_release(census.rows, path=tmp_path / "d.png") is not None


def test_the_hub_listing_is_retried_like_every_hub_request(listed_hub, no_hub_backoff) -> None:  # type: ignore[no-untyped-def]
    from hub_server import Fault

    from hf_gpu_estimator.sources.census import model_refs

    listed_hub.inject(Fault(path="^/api/models$", status=503, times=2))
    assert len(model_refs("hub:text-generation:2")) == 2
    listed_hub.inject(Fault(path="^/api/models$", status=404, error_code="RepoNotFound"))
    from hf_gpu_estimator.errors import SourceError

    with pytest.raises(SourceError):
        model_refs("hub:text-generation:2")


def test_push_to_hub_uploads_the_folder_but_not_the_cache(hub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from hf_gpu_estimator.census import push_to_hub

    census = run_census([ModelRef(id="openai-community/gpt2")], parse_jobs("inference:ctx=512"), gpus=GPUS,
                        offline=True, cache_dir=tmp_path)
    write_dataset(census, tmp_path, plots=False)
    url = push_to_hub(tmp_path, "hfge-test/gpu-census")
    assert url.endswith("/datasets/hfge-test/gpu-census")
    uploaded = hub.uploads["datasets/hfge-test/gpu-census"]
    assert uploaded["census.csv"] == (tmp_path / "census.csv").read_bytes()
    assert "README.md" in uploaded and CACHE_FILE not in uploaded
    push_to_hub(tmp_path, "hfge-test/gpu-census")  # again: the repo exists, the files are replaced
    with pytest.raises(InvalidArgumentError, match="push-to-hub"):
        push_to_hub(tmp_path, "no-org")


def _census_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("census_catalog", ROOT / "benchmarks" / "census_catalog.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_census_page_is_generated_from_its_data() -> None:
    script = _census_script()
    rows = read_rows(script.DATA)
    assert (ROOT / "docs" / "census.md").read_text(encoding="utf-8") == script.page_for(rows), (
        f"docs/census.md is stale: run {script.COMMAND}")


@pytest.mark.parametrize("model", ["meta-llama/Llama-3.1-8B", "Qwen/Qwen2.5-0.5B", "openai-community/gpt2"])
def test_the_catalog_census_data_is_what_the_estimator_gives_now(model: str) -> None:
    script = _census_script()
    kept = [r for r in read_rows(script.DATA) if r.model == model]
    now = run_census([ModelRef(id=model)], offline=True, gpus=script.gpus_of(script.DATA)).rows
    assert list(now) == kept, f"the catalog census is stale: run {script.COMMAND}"


def test_web_census_table_filters_and_sorts_the_catalog_census() -> None:
    from hf_gpu_estimator.web_census import HEADERS, census_table

    job = "inference:ctx=4096"
    every = census_table(job)
    assert len(every) == len(list_models()) and all(len(row) == len(HEADERS) for row in every)
    small = census_table(job, "24", "llama", sort="memory per device")
    assert small and all(row[1] == "llama" and int(row[5].split()[0]) <= 24 for row in small)
    assert [row[3] for row in small] == sorted(row[3] for row in small)
    refused = [row for row in census_table("lora:ctx=2048") if str(row[-1]).startswith("refused")]
    assert refused and "max_position_embeddings" in refused[0][-1]
    with pytest.raises(InvalidArgumentError):
        census_table("serve")


@pytest.mark.slow  # imports gradio and builds the whole app (5 s idle, 20 s on a loaded machine)
def test_web_app_has_the_census_tab() -> None:
    pytest.importorskip("gradio")
    from hf_gpu_estimator.web import build_app

    app = build_app()
    assert "census_table" in {getattr(block, "elem_id", None) for block in app.blocks.values()}


def test_cli_census_of_hub_ids_pushed_to_the_hub(hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from hf_gpu_estimator.cli import main

    ids = tmp_path / "ids.txt"
    ids.write_text("hfge-test/tiny-llama\nhfge-test/gated-llama\n")
    out = tmp_path / "out"
    code = main(["census", "--models", str(ids), "--jobs", "inference:ctx=64:new=16", "--gpus", "L4", "--no-plots",
                 "--output", str(out), "--push-to-hub", "hfge-test/tiny-census"])
    captured = capsys.readouterr()
    assert code == 0 and "uploaded to" in captured.err
    tiny, gated = read_rows(out / "census.csv")
    assert tiny.source == "family" and tiny.min_gpus == {"L4": 1}
    assert gated.source == "refused" and gated.reason.startswith("GatedRepoError")
    assert hub.uploads["datasets/hfge-test/tiny-census"]["census.csv"] == (out / "census.csv").read_bytes()
