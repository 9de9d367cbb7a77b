"""Plugin discovery through entry points, the PREANNOT_PLUGINS switch, broken plugins, every hook."""

from __future__ import annotations

import json

import pytest

from helpers import ROOT, pip_install, run_cli, write_plugin

HOOKS_PLUGIN = """
    import click
    from preannot import Annotator, Ranker, Selector, Trainer, Span, hookimpl

    class Echo(Annotator):
        type = "echo"
        description = "tags the first word"
        def annotate(self, tasks, upstream):
            return [[Span(label="FIRST", start=0, end=len(t.data["text"].split()[0]),
                          text=t.data["text"].split()[0])] for t in tasks]

    class Shortest(Ranker):
        type = "shortest"
        def priority(self, task, predictions):
            return 1 / (1 + len(task.data["text"]))

    class Backwards(Selector):
        type = "backwards"
        def select(self, pool, k):
            return list(range(len(pool.ids)))[::-1][:k]

    class Memorise(Trainer):
        type = "memorise"
        annotator = "echo"
        def train(self, train, dev, work_dir, *, parent=None, log=print):
            target = work_dir / "labels.txt"
            target.write_text(" ".join(sorted({r.label for e in train for r in e.regions})))
            return target

    @hookimpl
    def register_annotators(register):
        register(Echo)

    @hookimpl
    def register_rankers(register):
        register(Shortest)

    @hookimpl
    def register_trainers(register):
        register(Memorise)

    @hookimpl
    def register_selectors(register):
        register(Backwards)

    @hookimpl
    def register_commands(cli):
        @cli.command()
        def hello():
            "Say hello from a plugin."
            click.echo("hello from a plugin")
"""


@pytest.fixture(scope="module")
def plugin_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("plugins")
    good = pip_install(write_plugin(base / "src-good", "preannot-hooks", HOOKS_PLUGIN), base / "good")
    broken = pip_install(write_plugin(base / "src-broken", "preannot-broken",
                                      "raise ImportError('needs libfoo')\n"), base / "broken")
    return good, broken


CLASH_PLUGIN = """
    import click
    from preannot import hookimpl

    @hookimpl
    def register_commands(cli):
        @cli.command()
        def ls():
            "A plugin's ls, which must not replace preannot's."
            click.echo("the plugin's ls")

        @cli.command()
        def greet():
            click.echo("greetings")
"""


def listing(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_plugins_lists_hooks_and_annotators(plugin_dirs):
    good, _ = plugin_dirs
    data = listing(run_cli(["plugins", "--json"], pythonpath=[good]))
    plugin = next(p for p in data["plugins"] if p["name"] == "preannot_hooks")
    assert plugin["distribution"] == "preannot-hooks" and plugin["version"] == "1.2.3"
    assert plugin["hooks"] == ["register_annotators", "register_commands", "register_rankers",
                               "register_selectors", "register_trainers"]
    assert plugin["annotators"] == [{"type": "echo", "description": "tags the first word",
                                     "reads": ["text"], "emits": ["labels"], "can_train": True}]
    assert plugin["trainers"] == [{"type": "memorise", "description": "", "annotator": "echo",
                                   "learns": ["labels"]}]


def test_preannot_itself_is_listed_with_its_version():
    from importlib.metadata import version

    data = listing(run_cli(["plugins", "--json"], env={"PREANNOT_PLUGINS": ""}))
    [own] = [p for p in data["plugins"] if p["name"] == "preannot"]
    assert (own["distribution"], own["version"]) == ("preannot", version("preannot"))
    assert [a["type"] for a in own["annotators"]] == ["fusion"]


def test_broken_plugin_is_reported_and_the_cli_still_works(plugin_dirs):
    good, broken = plugin_dirs
    result = run_cli(["plugins", "--json"], pythonpath=[good, broken])
    data = listing(result)
    assert data["failed"] == [{"name": "preannot_broken", "distribution": "preannot-broken",
                               "error": "ImportError: needs libfoo"}]
    assert any(p["name"] == "preannot_hooks" for p in data["plugins"])
    table = run_cli(["plugins"], pythonpath=[broken])
    assert table.returncode == 0
    assert "failed to load" in table.stdout and "preannot-broken" in table.stdout


def test_env_var_restricts_and_disables(plugin_dirs):
    good, broken = plugin_dirs
    only = listing(run_cli(["plugins", "--json"], pythonpath=[good, broken],
                           env={"PREANNOT_PLUGINS": "preannot_hooks"}))
    assert [p["name"] for p in only["plugins"] if p["name"] != "preannot"] == ["preannot_hooks"]
    assert only["failed"] == []
    none = listing(run_cli(["plugins", "--json"], pythonpath=[good, broken],
                           env={"PREANNOT_PLUGINS": ""}))
    assert [p["name"] for p in none["plugins"] if p["name"] != "preannot"] == []


def test_register_commands_adds_a_subcommand(plugin_dirs):
    good, _ = plugin_dirs
    result = run_cli(["hello"], pythonpath=[good])
    assert result.returncode == 0 and result.stdout.strip() == "hello from a plugin"
    assert "hello" not in run_cli(["--help"], env={"PREANNOT_PLUGINS": ""}).stdout.split("Commands:")[1]


def test_a_plugin_command_may_not_take_a_built_in_name(tmp_path):
    clash = pip_install(write_plugin(tmp_path / "src", "preannot-clash", CLASH_PLUGIN),
                        tmp_path / "site")
    result = run_cli(["ls", "--help"], pythonpath=[clash])
    assert result.returncode == 0
    assert "Label Studio: push ranked pre-annotations" in result.stdout  # preannot's own ls
    assert ("warning: plugin 'preannot_clash': command 'ls' is already taken (by preannot or "
            "another plugin): not added; rename it") in result.stderr
    greet = run_cli(["greet"], pythonpath=[clash])
    assert greet.returncode == 0 and greet.stdout.strip() == "greetings"


def test_register_rankers_and_trainers(plugin_dirs, monkeypatch, tmp_path):
    good, _ = plugin_dirs
    monkeypatch.syspath_prepend(str(good))
    from preannot import Task
    from preannot.engine.host import load_host

    monkeypatch.setenv("PREANNOT_PLUGINS", "preannot_hooks")
    host = load_host()
    ranker_cls = host.ranker_types()["shortest"][1]
    short, long = Task("a", {"text": "hi"}), Task("b", {"text": "a much longer text"})
    ranker = ranker_cls()
    assert ranker.priority(short, []) > ranker.priority(long, [])
    from preannot import Example, Span

    trainer = host.trainer_types()["memorise"][1]("m")
    examples = [Example(short, [Span(label="B", start=0, end=2, text="hi")]),
                Example(long, [Span(label="A", start=0, end=1, text="a")])]
    assert trainer.train(examples, [], tmp_path).read_text() == "A B"
    assert host.annotator_types()["echo"][0] == "preannot_hooks"


def test_unknown_annotator_type_says_what_to_install(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"text": "x"}\n')
    (tmp_path / "preannot.toml").write_text(
        '[input]\npaths=["in.jsonl"]\n[output]\npath="o.json"\n[[annotators]]\ntype="nope"\n')
    result = run_cli(["run", "-c", str(tmp_path / "preannot.toml")], env={"PREANNOT_PLUGINS": ""})
    assert result.returncode == 1
    assert "no annotator type 'nope' is installed" in result.stderr
    assert "Traceback" not in result.stderr


def test_custom_plugin_example_installs_and_runs(tmp_path):
    target = pip_install(ROOT / "examples" / "custom-plugin", tmp_path / "site")
    data = listing(run_cli(["plugins", "--json"], pythonpath=[target]))
    urgency = next(p for p in data["plugins"] if p["name"] == "urgency")
    assert urgency["distribution"] == "preannot-urgency"
    assert urgency["annotators"][0]["type"] == "urgency"
    texts = ["Please ship ASAP, thanks", "No rush at all", "urgent: call me today"]
    (tmp_path / "emails.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    (tmp_path / "preannot.toml").write_text(
        '[input]\npaths=["emails.jsonl"]\n[output]\npath="out.json"\n'
        '[[annotators]]\nname="urgency"\ntype="urgency"\n')
    result = run_cli(["run", "-c", str(tmp_path / "preannot.toml"), "--no-progress"],
                     pythonpath=[target])
    assert result.returncode == 0, result.stderr
    tasks = json.loads((tmp_path / "out.json").read_text())
    choices = [[r["value"]["choices"] for r in t["predictions"][0]["result"] if r["type"] == "choices"]
               for t in tasks]
    assert choices == [[["URGENT"]], [], [["URGENT"]]]
    cues = [[r["value"]["text"] for r in t["predictions"][0]["result"] if r["type"] == "labels"]
            for t in tasks]
    assert cues == [["ASAP"], [], ["urgent", "today"]]


def test_every_hook_is_documented_and_exercised_by_a_test():
    """As datasette does: a new hook in hookspecs.py needs a docstring, a README row (the
    registration hooks; the events' rows come with the docs) and a test plugin."""
    import preannot.hookspecs as specs

    hooks = sorted(name for name, fn in vars(specs).items() if hasattr(fn, "preannot_spec"))
    assert hooks == ["harvest_duplicates", "harvested", "model_source", "pre_annotated",
                     "promoted", "push_ranker", "register_annotators", "register_commands",
                     "register_rankers", "register_selectors", "register_trainers",
                     "training_corrections"]
    assert [h for h in hooks if not (getattr(specs, h).__doc__ or "").strip()] == []
    readme = (ROOT / "README.md").read_text()
    assert [h for h in hooks if h.startswith("register_") and f"| `{h}` |" not in readme] == []
    tests = [p.read_text() for p in [*(ROOT / "tests").glob("*.py"),
                                     *(ROOT / "plugins").glob("*/tests/*.py")]]
    assert [h for h in hooks if not any(f"def {h}(" in t for t in tests)] == []
