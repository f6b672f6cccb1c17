#!/usr/bin/python3
"""octo-setup: prepares /home/dev before the services start (run by octo-entrypoint as dev).

1. Applies the session's agent template (mounted read-only at /etc/octo/template) to the
   workspace, without overwriting what the user changed. For each template file
   (AGENTS.md, opencode.json) the checksum of what was last written is kept in
   ~/.octo/template-state.json, and:
     - the file is absent and was never written   -> write it;
     - the file is absent but was written before  -> the user deleted it: leave it absent;
     - the file is unchanged since it was written -> update it to the template's version;
     - the file differs from what was written (or was there first) -> keep the user's file.
   So template updates reach users who did not touch a file, and nobody loses an edit.
2. Writes the LLM provider into opencode's global config, ~/.config/opencode/opencode.json
   (mode 0600): the OpenAI-compatible provider "octo" at octod's model gateway, which the
   session gateway bridges to a loopback port (LLM_BASE_URL), with a placeholder API key:
   the provider's real key never enters the session, octod adds it on its side. The models
   are OCTO_LLM_MODELS (comma-separated, not secret; the first is the default). Other keys
   of that file are kept, an older "octo" provider (with a key) is replaced;
   `model`/`small_model` are only set when absent or already pointing at "octo/". Without
   OCTO_LLM_MODELS the "octo" provider is removed again.

Messages go to stdout/stderr, one line each; the entrypoint prefixes them.
"""

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

TEMPLATE_FILES = ("AGENTS.md", "opencode.json")
PROVIDER_ID = "octo"
# The session gateway's bridge to octod's model gateway (octo-entrypoint's LLM_ADDR).
LLM_BASE_URL = "http://127.0.0.1:41830/v1"
# What opencode sends as its key: not a secret. The socket behind LLM_BASE_URL names the
# session; octod replaces this with the provider's key.
PLACEHOLDER_KEY = "octo-session"


def log(message):
    print(message, flush=True)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def write_atomic(path, data, mode=0o644):
    """Writes `data` to `path` through a temporary file in the same directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def load_json(path, default):
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def template_name(template_dir):
    """The `name` from template.toml, else the directory's name."""
    try:
        import tomllib

        with open(template_dir / "template.toml", "rb") as f:
            return str(tomllib.load(f).get("name", template_dir.name))
    except (OSError, ValueError):
        return template_dir.name


def apply_template(template_dir, home):
    if not template_dir.is_dir():
        log(f"no template at {template_dir}: nothing to apply")
        return
    state_path = home / ".octo" / "template-state.json"
    state = load_json(state_path, {})
    written = state.get("files", {})
    name = template_name(template_dir)
    for file in TEMPLATE_FILES:
        source = template_dir / file
        if not source.is_file():
            continue
        new = source.read_bytes()
        target = home / file
        last = written.get(file)
        try:
            current = target.read_bytes()
        except FileNotFoundError:
            current = None
        if current is None:
            if last is not None:
                log(f"{file}: deleted by the user; not restored")
                continue
            write_atomic(target, new)
            written[file] = sha256(new)
            log(f"{file}: written from template {name!r}")
        elif sha256(current) == sha256(new):
            written[file] = sha256(new)
        elif last is not None and sha256(current) == last:
            write_atomic(target, new)
            written[file] = sha256(new)
            log(f"{file}: updated to template {name!r}")
        else:
            log(f"{file}: changed by the user; kept (the template's version is {source})")
    state = {"template": name, "files": written}
    write_atomic(state_path, (json.dumps(state, indent=2) + "\n").encode())


def llm_models(raw):
    """Parses OCTO_LLM_MODELS. Returns (models, None) or (None, error message)."""
    models = [m.strip() for m in raw.split(",") if m.strip()]
    if not models:
        return None, "OCTO_LLM_MODELS names no model"
    return models, None


def apply_provider(raw, home):
    path = home / ".config" / "opencode" / "opencode.json"
    try:
        current = load_json(path, {})
    except ValueError:
        log(f"{path} is not valid JSON; leaving it alone, no LLM provider configured")
        return
    if not isinstance(current, dict):
        log(f"{path} is not a JSON object; leaving it alone, no LLM provider configured")
        return
    ours = f"{PROVIDER_ID}/"
    providers = current.get("provider")
    if not isinstance(providers, dict):
        providers = {}
    if raw is None:
        if PROVIDER_ID not in providers:
            return
        providers.pop(PROVIDER_ID)
        for key in ("model", "small_model"):
            if str(current.get(key, "")).startswith(ours):
                current.pop(key)
        log("no OCTO_LLM_MODELS: removed the octo provider")
    else:
        models, error = llm_models(raw)
        if error:
            log(f"{error}; no LLM provider configured")
            return
        providers[PROVIDER_ID] = {
            "npm": "@ai-sdk/openai-compatible",
            "name": "Octo",
            "options": {"baseURL": LLM_BASE_URL, "apiKey": PLACEHOLDER_KEY},
            "models": {m: {"name": m, "tool_call": True} for m in models},
        }
        for key in ("model", "small_model"):
            value = current.get(key)
            if value is None or (str(value).startswith(ours) and value[len(ours):] not in models):
                current[key] = ours + models[0]
        log(f"LLM provider: models {', '.join(models)} through octod's model gateway")
    current["provider"] = providers
    current.setdefault("$schema", "https://opencode.ai/config.json")
    write_atomic(path, (json.dumps(current, indent=2) + "\n").encode(), mode=0o600)


def main():
    home = Path(os.environ.get("HOME", "/home/dev"))
    template_dir = Path(os.environ.get("OCTO_TEMPLATE_DIR", "/etc/octo/template"))
    apply_template(template_dir, home)
    apply_provider(os.environ.get("OCTO_LLM_MODELS"), home)


if __name__ == "__main__":
    try:
        main()
    except OSError as e:
        print(f"octo-setup: {e}", file=sys.stderr)
        sys.exit(1)
