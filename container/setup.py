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
2. Writes the LLM provider from OCTO_LLM_CONFIG (JSON: base_url, model, optional api_key and
   name) into opencode's global config, ~/.config/opencode/opencode.json (mode 0600), as the
   OpenAI-compatible provider "octo" and the default model. Other keys of that file are kept;
   `model`/`small_model` are only set when absent or already pointing at "octo/". Without
   OCTO_LLM_CONFIG the "octo" provider is removed again. The API key is never logged.

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


def llm_config(raw):
    """Parses OCTO_LLM_CONFIG. Returns (config, None) or (None, error message)."""
    try:
        config = json.loads(raw)
    except ValueError as e:
        return None, f"OCTO_LLM_CONFIG is not JSON ({e.msg} at {e.pos})"
    if not isinstance(config, dict):
        return None, "OCTO_LLM_CONFIG is not a JSON object"
    base_url = config.get("base_url")
    model = config.get("model")
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        return None, "OCTO_LLM_CONFIG.base_url must be an http(s) URL"
    if not isinstance(model, str) or not model:
        return None, "OCTO_LLM_CONFIG.model must be a model name"
    api_key = config.get("api_key")
    if api_key is not None and not isinstance(api_key, str):
        return None, "OCTO_LLM_CONFIG.api_key must be a string"
    name = config.get("name") or config.get("provider") or "Octo LLM provider"
    return {"base_url": base_url, "model": model, "api_key": api_key, "name": str(name)}, None


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
        log("no OCTO_LLM_CONFIG: removed the octo provider")
    else:
        config, error = llm_config(raw)
        if error:
            log(f"{error}; no LLM provider configured")
            return
        options = {"baseURL": config["base_url"]}
        if config["api_key"]:
            options["apiKey"] = config["api_key"]
        providers[PROVIDER_ID] = {
            "npm": "@ai-sdk/openai-compatible",
            "name": config["name"],
            "options": options,
            "models": {config["model"]: {"name": config["model"], "tool_call": True}},
        }
        for key in ("model", "small_model"):
            value = current.get(key)
            if value is None or str(value).startswith(ours):
                current[key] = ours + config["model"]
        log(f"LLM provider: model {config['model']!r} at {config['base_url']}")
    current["provider"] = providers
    current.setdefault("$schema", "https://opencode.ai/config.json")
    write_atomic(path, (json.dumps(current, indent=2) + "\n").encode(), mode=0o600)


def main():
    home = Path(os.environ.get("HOME", "/home/dev"))
    template_dir = Path(os.environ.get("OCTO_TEMPLATE_DIR", "/etc/octo/template"))
    apply_template(template_dir, home)
    apply_provider(os.environ.get("OCTO_LLM_CONFIG"), home)


if __name__ == "__main__":
    try:
        main()
    except OSError as e:
        print(f"octo-setup: {e}", file=sys.stderr)
        sys.exit(1)
