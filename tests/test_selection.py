"""Set-level selection: k-center picks, "more like this", near-duplicates, and Label Studio
serving the selection in order with a "similar to ..." tab (real index, real server)."""

from __future__ import annotations

import json
import random
import sqlite3
import uuid

import numpy as np
import pytest

from helpers import ROOT, run_cli
from preannot import ConfigError, Pool
from preannot.selection.selectors import k_center_greedy
from preannot.engine.config import SelectionSettings, load_config
from preannot.engine.host import load_host
from preannot.labelstudio.push import PRIORITY_FIELD
from preannot.selection import operations as select
from preannot.labelstudio import sync
from preannot.selection.index import VectorIndex

HOST = load_host()

# four clusters of 2-D points and one in the middle
POINTS = [(0, 0), (0.3, 0.1), (0.1, 0.4),          # 0-2 near the origin
          (10, 0.5), (10.4, 0.2),                  # 3-4 right
          (0.2, 9.0), (0.6, 9.3),                  # 5-6 top
          (9.2, 9.7), (9.6, 9.9),                  # 7-8 far corner
          (5.1, 4.8)]                              # 9 the middle


def test_k_center_picks_the_middle_then_the_farthest_cluster_each_time():
    # the middle (nearest the mean) first; then each pick the point farthest from all picked:
    # (10.4, 0.2) is 7.02 from the middle, then (0, 0) 7.00 from it, (9.6, 9.9) 6.80, and
    # (0.2, 9.0) 6.45 (its neighbour (0.6, 9.3) is 6.36 from the middle)
    assert k_center_greedy(POINTS, 5) == [9, 4, 0, 8, 5]
    assert k_center_greedy(POINTS, 0) == []
    assert sorted(k_center_greedy(POINTS, 99)) == list(range(10))


def test_k_center_starts_away_from_what_is_labeled():
    # the origin and (5, 5) are labeled: (10.4, 0.2) is 7.22 from them, then (9.6, 9.9) 6.72,
    # then (0.2, 9.0) 6.25; the middle, 0.22 from a labeled point, is never picked
    assert k_center_greedy(POINTS, 3, labeled=np.array([(0, 0), (5, 5)])) == [4, 8, 5]


def test_selectors_are_built_ins_and_hybrid_prefers_the_uncertain():
    assert {"diversity", "hybrid", "balance", "random"} <= set(HOST.selector_types())
    pool = Pool(ids=[str(i) for i in range(len(POINTS))], vectors=np.array(POINTS, np.float32),
                labeled=np.array([(5, 5)], np.float32),
                uncertainty=[0.0, 0, 0, 0, 0, 0.9, 0, 0, 0, 0])
    # from the labeled middle, (10.4, 0.2) is farthest (7.22); certain, it loses to the
    # uncertain (0.2, 9.0) (6.25 x 0.91 against 7.22 x 0.1)
    assert HOST.selector(SelectionSettings("diversity")).select(pool, 1) == [4]
    assert HOST.selector(SelectionSettings("hybrid", options={"weight": 0.9})).select(pool, 1) == [5]
    assert HOST.selector(SelectionSettings("hybrid", options={"weight": 0, "candidates": 0})
                         ).select(pool, 1) == [4]
    # by default among the 3k least sure only: for k = 1, (0.2, 9.0) then the first two in
    # pool order, (0, 0) and (0.3, 0.1); with no weight the farthest of them from the labeled
    # middle is the origin (7.07 against 6.25 and 6.90)
    assert HOST.selector(SelectionSettings("hybrid", options={"weight": 0})).select(pool, 1) == [0]
    pool.uncertainty = [0.0, 0, 0, 0.5, 0.6, 0.9, 0, 0.8, 0, 0.7]
    # the 6 least sure for k = 2: 5, 7, 9, 4, 3 (and 0); from the labeled middle k-center
    # weighs (0.2, 9.0) 6.25 x 0.95 = 5.94 first, then (10.4, 0.2) 7.22 x 0.8 = 5.78 before
    # (9.2, 9.7) 6.30 x 0.9 = 5.67
    assert HOST.selector(SelectionSettings("hybrid")).select(pool, 2) == [5, 4]
    with pytest.raises(ConfigError, match="candidates = 0.5"):
        HOST.selector(SelectionSettings("hybrid", options={"candidates": 0.5}))
    pool.labels = [["A"], ["A"], ["A"], ["A"], ["A"], ["RARE", "A"], ["A"], ["A"], [], ["A"]]
    pool.labeled_counts = {"A": 99}
    # A is common (weight 0.1), RARE never labeled (1), no label counts as rare (1): the far
    # corner (6.72 away) beats (0.2, 9.0) (6.25), which beats (10.4, 0.2) (7.22 x 0.1)
    assert HOST.selector(SelectionSettings("balance")).select(pool, 2) == [8, 5]
    with pytest.raises(ConfigError, match="'nope' is not installed"):
        HOST.selector(SelectionSettings("nope"))
    with pytest.raises(ConfigError, match="unknown option 'wieght'"):
        HOST.selector(SelectionSettings("hybrid", options={"wieght": 1}))


def test_the_index_persists_and_adds_incrementally(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex(tmp_path / "i.usearch", 16)
    assert index.index is not None, "usearch is not installed: pip install 'preannot[select]'"
    index.add(list(range(200)), vectors[:200])
    index.save()
    again = VectorIndex(tmp_path / "i.usearch", 16)
    again.add(list(range(200, 300)), vectors[200:])
    keys, sims = again.search(vectors[[5, 250]], 1)
    assert keys[:, 0].tolist() == [5, 250] and np.allclose(sims[:, 0], 1.0, atol=1e-4)
    assert len(again) == 300


WORDS = ("market price order delivery invoice account meeting report budget team office "
         "schedule client project update review contract payment supplier warehouse").split()
FOOTBRIDGE = ["a wooden footbridge crosses the river near the mill",
              "the old footbridge over the river was closed for repairs",
              "walkers use the footbridge across the river every morning"]


def filler(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 10)))


def write_run_output(folder, texts: list[tuple[str, str]], scores=None) -> None:
    """A `preannot run` output: tasks with their ids and a prediction each."""
    tasks = [{"data": {"text": text}, "meta": {"preannot_id": tid},
              "predictions": [{"model_version": "kw-1", "score": (scores or {}).get(tid, 0.9),
                               "result": []}]} for tid, text in texts]
    (folder / "out").mkdir(exist_ok=True)
    (folder / "out" / "pred.json").write_text(json.dumps(tasks))
    (folder / "preannot.toml").write_text(f"""
[output]
path = "out/pred.json"
[labelstudio]
title = "selection {uuid.uuid4().hex[:8]}"
""")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("similar")
    rng = random.Random(7)
    texts = [(f"f{i}", filler(rng)) for i in range(80)]
    texts[20:20] = [("bridge-a", FOOTBRIDGE[0])]
    texts[50:50] = [("bridge-b", FOOTBRIDGE[1]), ("bridge-c", FOOTBRIDGE[2])]
    # planted near-duplicates: an exact copy, and a copy that differs by one character
    texts += [("copy-1", texts[3][1]), ("near-1", texts[9][1].upper() + " !"),
              ("copy-2", FOOTBRIDGE[1])]
    write_run_output(folder, texts)
    return folder, dict(texts)


def test_similar_returns_the_planted_neighbours_first(corpus):
    folder, texts = corpus
    result = run_cli(["similar", "-c", str(folder / "preannot.toml"), "--text",
                      "a footbridge over a river", "-k", "4", "--json"])
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["query"] == '"a footbridge over a river"'
    assert {t["id"] for t in found["tasks"][:4]} == {"bridge-a", "bridge-b", "bridge-c", "copy-2"}
    # from a task: its copy first (cosine 1), the other footbridges next
    by_task = select.similar(load_config(folder / "preannot.toml"), [],
                             select.Query(task="bridge-b"), 3)
    assert [t["id"] for t in by_task.tasks][0] == "copy-2"
    assert by_task.tasks[0]["similarity"] == pytest.approx(1.0, abs=1e-3)
    assert {t["id"] for t in by_task.tasks[1:]} == {"bridge-a", "bridge-c"}


def test_duplicates_group_exactly_the_planted_copies(corpus):
    folder, _ = corpus
    result = run_cli(["duplicates", "-c", str(folder / "preannot.toml"), "--json"])
    assert result.returncode == 0, result.stderr
    groups = [[t["id"] for t in g] for g in json.loads(result.stdout)["groups"]]
    assert groups == [["f3", "copy-1"], ["f9", "near-1"], ["bridge-b", "copy-2"]]
    # embeddings and index are reused: nothing is embedded a second time
    config = load_config(folder / "preannot.toml")
    assert (config.state_dir / "embeddings.sqlite").exists()
    assert len(list((config.state_dir / "index").glob("*.usearch"))) == 1


def test_a_selection_reaches_label_studio_in_order_with_a_similar_tab(labelstudio, tmp_path):
    """Pushed with [selection] diversity, Label Studio's `next` serves one task of each topic
    first, in the selector's order; `similar --push` adds a tab holding the footbridges."""
    topics = {"fruit": "apple pear banana plum cherry grape melon",
              "tools": "hammer wrench drill saw chisel screwdriver pliers",
              "weather": "rain snow storm cloud wind thunder drizzle"}
    rng = random.Random(3)
    texts = []
    for topic, words in topics.items():
        for i in range(4):
            texts.append((f"{topic}-{i}", " ".join(rng.sample(words.split(), 5))))
    texts += [(f"bridge-{i}", t) for i, t in enumerate(FOOTBRIDGE)]
    write_run_output(tmp_path, texts)
    (tmp_path / "label.xml").write_text(
        '<View><Labels name="label" toName="text"><Label value="PLACE"/></Labels>'
        '<Text name="text" value="$text"/></View>')
    with open(tmp_path / "preannot.toml", "a") as f:
        f.write('label_config = "label.xml"\n[selection]\nselector = "diversity"\nk = 4\n'
                'dim = 8\nduplicates = 2\n')
    config = load_config(tmp_path / "preannot.toml")
    client = labelstudio.client()
    logged = []
    summary = sync.push(config, client, input_file=config.output, host=HOST, log=logged.append)
    assert (summary.created, summary.failures) == (len(texts), [])
    assert logged == ["selection 'diversity': 4 tasks first in the queue"]
    exported = {t["meta"]["preannot_id"]: t for t in client.export(summary.project_id)}
    priority = {k: t["data"][PRIORITY_FIELD] for k, t in exported.items()}
    chosen = sorted((p, k) for k, p in priority.items() if p > 0.25)
    order = [k for _, k in sorted(chosen, reverse=True)]
    assert [p for p, _ in sorted(chosen, reverse=True)] == [1.0, 0.875, 0.75, 0.625]
    assert {k.split("-")[0] for k in order} == {"fruit", "tools", "weather", "bridge"}
    served = []
    for _ in order:
        task = client.next_task(summary.project_id)
        served.append(task["meta"]["preannot_id"])
        client.sdk.annotations.create(id=task["id"], result=[], was_cancelled=True)
    assert served == order

    found = select.similar(config, [], select.Query(text="footbridge river"), 3)
    view, marked, ids = select.push_similar(client, summary.project_id, found)
    assert marked == 3
    assert [exported[t["id"]]["id"] for t in found.tasks] == ids
    assert {t["id"] for t in found.tasks} == {"bridge-0", "bridge-1", "bridge-2"}
    assert client.view_tasks(view, summary.project_id) == ids
    views = client.request("GET", "api/dm/views/", params={"project": summary.project_id})
    assert [v["data"]["title"] for v in views if v["id"] == view] == [
        'similar to "footbridge river"']


class Counting:
    """The TF-IDF embedder, counting what it is asked to embed; ``fail_after`` batches it
    raises (a fault injected: an interrupted run), to show what was committed survives."""

    def __init__(self, inner, fail_after: int | None = None) -> None:
        self.inner, self.fail_after, self.asked = inner, fail_after, []
        self.model_version = inner.model_version

    def embed(self, tasks):
        if self.fail_after is not None and len(self.asked) >= self.fail_after:
            raise KeyboardInterrupt
        self.asked.append([t.id for t in tasks])
        return self.inner.embed(tasks)


def test_embeddings_are_cached_by_content_and_resume_after_an_interruption(tmp_path):
    from preannot import Task
    from preannot.selection.store import EmbeddingStore, embed_tasks
    from preannot.selection.text import TfidfEmbedder

    rng = random.Random(1)
    tasks = [Task(f"t{i}", {"text": filler(rng)}) for i in range(150)]
    tfidf = TfidfEmbedder(tmp_path / "index", "text", 16)
    tfidf.fit(tasks)
    store = EmbeddingStore(tmp_path / "embeddings.sqlite")
    broken = Counting(tfidf, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        embed_tasks(tasks, broken, store)
    assert [len(b) for b in broken.asked] == [64, 64]
    again = Counting(tfidf)
    vectors, failures = embed_tasks(tasks, again, store)
    assert again.asked == [[t.id for t in tasks[128:]]] and failures == []
    changed = [*tasks[:3], Task("t1", {"text": "a changed text"}), Task("new", {"text": 7})]
    third = Counting(tfidf)
    vectors, failures = embed_tasks(changed, third, store)
    assert third.asked == [["t1", "new"]]
    assert failures == [("new", "not embedded: 'text' holds a int, not text")]
    assert vectors[4] is None and np.isclose(np.linalg.norm(vectors[3]), 1.0)
    # a fit kept on disk (plain arrays, no pickle) gives the same model version and the same
    # vectors: the cache stays valid across runs
    kept = TfidfEmbedder(tmp_path / "index", "text", 16)
    assert kept.model_version == tfidf.model_version
    assert np.allclose(kept.embed(tasks[:20]), tfidf.embed(tasks[:20]), atol=1e-6)
    assert [p.name for p in (tmp_path / "index").iterdir()] == ["tfidf-text-16.npz"]


def test_similar_to_a_weak_label_starts_from_where_humans_added_it(corpus, tmp_path):
    """``--label``: the tasks where humans added (or corrected) the label, as the last pull's
    corrections file has them; those labeled tasks are left out of the answer."""
    folder, texts = corpus
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "pred.json").write_text((folder / "out" / "pred.json").read_text())
    (tmp_path / "preannot.toml").write_text((folder / "preannot.toml").read_text())
    item = {"type": "labels", "value": {"start": 0, "end": 5, "labels": ["BRIDGE"]},
            "classification": "added"}
    (tmp_path / "harvest").mkdir()
    (tmp_path / "harvest" / "corrections.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"task": 1, "preannot_id": "bridge-a", "data": {"text": texts["bridge-a"]},
         "status": "annotated", "human": [item], "predicted": []},
        {"task": 2, "preannot_id": "f0", "data": {"text": texts["f0"]},
         "status": "annotated", "human": [{**item, "classification": "matched",
                                           "value": {"labels": ["OTHER"]}}], "predicted": []}]))
    found = select.similar(load_config(tmp_path / "preannot.toml"), [],
                           select.Query(label="BRIDGE"), 3)
    assert found.query == "label BRIDGE"
    assert {t["id"] for t in found.tasks} == {"bridge-b", "bridge-c", "copy-2"}
    with pytest.raises(ConfigError, match=r"--label 'OTHER'.*added or corrected: BRIDGE \(1\)"):
        select.similar(load_config(tmp_path / "preannot.toml"), [], select.Query(label="OTHER"), 3)


def test_a_selection_orders_the_tasks_already_in_a_project(labelstudio, tmp_path):
    """``ls push --existing`` with [selection]: the project's untouched tasks are the pool;
    the first two picks cover both topics, and the scores serve them first."""
    from preannot.labelstudio.ranking import priority_to_score
    from preannot.labelstudio.push import ensure_project
    from annotators import KeywordsPlugin

    texts = ["apple pear plum", "apple pear cherry", "pear plum cherry",
             "hammer drill saw", "hammer saw chisel", "drill saw chisel"]
    (tmp_path / "preannot.toml").write_text(f"""
[[annotators]]
name = "kw"
type = "keywords"
words = {{apple = ["FRUIT", 0.9], hammer = ["TOOL", 0.6]}}
[labelstudio]
title = "selection existing {uuid.uuid4().hex[:8]}"
[selection]
selector = "diversity"
k = 2
dim = 4
duplicates = 2
""")
    config = load_config(tmp_path / "preannot.toml")
    host = load_host((KeywordsPlugin(),))
    client = labelstudio.client()
    built = sync.annotators(config, host)
    project = ensure_project(client, None, title=config.labelstudio.title, annotators=built)
    client.sdk.projects.import_tasks(project, request=[{"text": t} for t in texts])
    logged = []
    summary = sync.push(config, client, project=str(project), existing=True, host=host,
                        log=logged.append)
    assert (summary.predicted, summary.failures) == (6, [])
    assert logged == ["selection 'diversity': 2 tasks first in the queue"]
    scores = {t["data"]["text"]: [p.score for p in client.sdk.predictions.list(task=t["id"])][0]
              for t in client.export(project)}
    first = sorted(scores, key=scores.get)[:2]
    assert sorted(scores.values()) == [priority_to_score(1.0), priority_to_score(0.75),
                                       *[priority_to_score(0.25)] * 4]
    assert {"apple" in first[0] or "plum" in first[0] or "cherry" in first[0],
            "apple" in first[1] or "plum" in first[1] or "cherry" in first[1]} == {True, False}


def test_without_usearch_the_exact_numpy_search_answers_the_same(tmp_path):
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    exact = VectorIndex(None, 8, exact=True)
    assert exact.index is None
    exact.add(list(range(50)), vectors)
    exact.add([7], -vectors[7], replace=True)
    keys, sims = exact.search(vectors[[3, 7]], 3)
    brute = vectors @ vectors.T
    brute[:, 7] = -brute[:, 7]
    assert keys.tolist() == np.argsort(-brute[[3, 7]], axis=1)[:, :3].tolist()
    assert np.allclose(sims, np.sort(brute[[3, 7]], axis=1)[:, ::-1][:, :3], atol=1e-6)
    assert 7 in exact and 50 not in exact and len(exact) == 50


def test_ls_pull_counts_the_near_duplicates_humans_labeled_twice(labelstudio, tmp_path):
    """With [selection], `ls pull` groups the annotated tasks that are near-duplicates (labels
    paid twice): a copy annotated beside its original is a group; a copy left unlabeled, or
    only skipped (a cancelled annotation), is not; metrics.json, the report and the CLI say so."""
    rng = random.Random(11)
    texts = [(f"f{i}", filler(rng)) for i in range(30)]
    texts += [("copy-3", texts[3][1]), ("near-5", texts[5][1] + " !"),
              ("copy-7", texts[7][1]), ("copy-9", texts[9][1])]
    write_run_output(tmp_path, texts)
    (tmp_path / "label.xml").write_text(
        '<View><Labels name="label" toName="text"><Label value="PLACE"/></Labels>'
        '<Text name="text" value="$text"/></View>')
    with open(tmp_path / "preannot.toml", "a") as f:
        f.write('label_config = "label.xml"\n[selection]\ndim = 16\nduplicates = 0.95\n')
    config = load_config(tmp_path / "preannot.toml")
    client = labelstudio.client()
    summary = sync.push(config, client, input_file=config.output, host=HOST)
    ids = {t["meta"]["preannot_id"]: t["id"] for t in client.export(summary.project_id)}
    for name in ("f3", "copy-3", "f5", "near-5", "f7", "f9", "f10", "f11"):
        client.sdk.annotations.create(id=ids[name], result=[])
    client.sdk.annotations.create(id=ids["copy-9"], result=[], was_cancelled=True)
    result = run_cli(["ls", "pull", "-c", str(tmp_path / "preannot.toml"), "-p",
                      str(summary.project_id), "--no-progress"], env=labelstudio.env())
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stderr.split())
    assert ("near-duplicates among the annotated tasks: 2 groups, 2 labels paid twice") in said
    metrics = json.loads((tmp_path / "harvest" / "metrics.json").read_text())
    assert metrics["duplicates"] == {"threshold": 0.95, "groups": [[ids["f3"], ids["copy-3"]],
                                                                   [ids["f5"], ids["near-5"]]]}
    report = (tmp_path / "harvest" / "report.html").read_text()
    assert "Near-duplicates labeled more than once (2 groups, 2 labels paid twice" in report
    assert f"data?task={ids['copy-3']}" in report


def test_a_run_with_selection_embeds_its_tasks_and_embed_then_has_nothing_to_do(tmp_path):
    """`preannot run` with [selection] embeds and indexes its output (TF-IDF + SVD here);
    `preannot embed` afterwards finds every vector cached; a task without text is named."""
    from preannot.selection.store import EmbeddingStore

    rng = random.Random(2)
    records = [{"id": f"m{i}", "text": filler(rng)} for i in range(24)]
    records.append({"id": "empty", "text": ""})
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    rules = ROOT / "rules" / "product-ner"
    (tmp_path / "preannot.toml").write_text(
        '[input]\npaths = ["in.jsonl"]\n[output]\npath = "out.json"\n'
        f'[[annotators]]\nname = "rules"\ntype = "rules"\nrules = "{rules.as_posix()}"\n'
        '[selection]\ndim = 8\n')
    result = run_cli(["run", "-c", str(tmp_path / "preannot.toml"), "--no-progress"])
    assert result.returncode == 3, result.stderr  # the empty task cannot be embedded
    said = " ".join(result.stderr.split())
    assert "wrote" in said and "25 tasks (25 annotated now" in said
    assert "embedded 24 tasks with tfidf-svd-8-" in said
    assert "left out out.json[24]: not embedded: its vector is all zeros" in said
    config = load_config(tmp_path / "preannot.toml")

    def stored():  # INSERT OR REPLACE gives a re-saved vector a new rowid
        with sqlite3.connect(config.state_dir / "embeddings.sqlite") as db:
            return db.execute("SELECT count(*), max(rowid) FROM vectors").fetchone()

    before = stored()
    assert before[0] == 24
    again = run_cli(["embed", "-c", str(tmp_path / "preannot.toml"), "--no-progress"])
    assert again.returncode == 3 and "embedded 24 tasks" in " ".join(again.stderr.split())
    assert stored() == before
