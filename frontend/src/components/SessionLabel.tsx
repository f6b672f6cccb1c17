// A session's name (and, in the picker, its description) that its owner can edit in place: the
// Rename button turns it into fields; Enter saves (`PATCH /api/sessions/<id>`), Escape cancels.
// A name octod would refuse is caught before sending; octod's own refusal is shown under the
// fields, which stay open so the text can be fixed.
import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { api, errorMessage, type Session } from "../api";
import { DESCRIPTION_MAX, nameProblem } from "../sessions";

export function SessionLabel(props: {
  session: Session;
  /** Also show and edit the description (the picker); the header edits the name only. */
  withDescription?: boolean;
  /** The element that shows the name: the workspace header's title is its page's `h1`. */
  heading?: boolean;
  className?: string;
  onSaved: (next: Session) => void;
}): JSX.Element {
  const { session } = props;
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(session.name);
  const [description, setDescription] = useState(session.description);
  const [saving, setSaving] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const nameInput = useRef<HTMLInputElement>(null);

  useEffect(() => {
    if (editing) nameInput.current?.select();
  }, [editing]);

  const start = () => {
    setName(session.name);
    setDescription(session.description);
    setError(null);
    setEditing(true);
  };
  const cancel = () => {
    setEditing(false);
    setError(null);
  };
  const save = async (event?: FormEvent) => {
    event?.preventDefault();
    if (saving) return;
    const problem = nameProblem(name);
    if (problem) {
      setError(problem);
      return;
    }
    const change: { name?: string; description?: string } = {};
    if (name.trim() !== session.name) change.name = name;
    if (props.withDescription && description.trim() !== session.description) change.description = description;
    if (Object.keys(change).length === 0) {
      cancel();
      return;
    }
    setSaving(true);
    setError(null);
    try {
      const next = await api.updateSession(session.id, change);
      setEditing(false);
      props.onSaved(next);
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setSaving(false);
    }
  };
  const onKeyDown = (event: KeyboardEvent) => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      cancel();
    }
  };

  if (editing) {
    return (
      <form
        className={`session-label editing ${props.className ?? ""}`}
        data-testid="session-label"
        onSubmit={(e) => void save(e)}
        onKeyDown={onKeyDown}
      >
        <input
          ref={nameInput}
          className="session-name-input"
          data-testid="session-name-input"
          aria-label="Session name"
          value={name}
          disabled={saving}
          onChange={(e) => setName(e.target.value)}
        />
        {props.withDescription && (
          <input
            className="session-description-input"
            data-testid="session-description-input"
            aria-label="Session description"
            placeholder="Description (optional)"
            value={description}
            disabled={saving}
            onChange={(e) => setDescription(e.target.value)}
          />
        )}
        <span className="session-label-actions">
          <button type="submit" className="btn small primary" data-testid="session-rename-save" disabled={saving}>
            {saving ? "Saving…" : "Save"}
          </button>
          <button type="button" className="btn small ghost" data-testid="session-rename-cancel" onClick={cancel}>
            Cancel
          </button>
        </span>
        {error && (
          <div className="small-text failure-reason" role="alert" data-testid="session-rename-error">
            {error}
          </div>
        )}
        {props.withDescription && [...description.trim()].length > DESCRIPTION_MAX && (
          <div className="small-text muted">At most {DESCRIPTION_MAX} characters.</div>
        )}
      </form>
    );
  }

  const Name = props.heading ? "h1" : "div";
  return (
    <div className={`session-label ${props.className ?? ""}`} data-testid="session-label">
      <span className="session-label-line">
        <Name className="session-name" data-testid="session-name" title={session.name}>
          {session.name}
        </Name>
        <button
          type="button"
          className="btn ghost small session-rename"
          data-testid="session-rename"
          aria-label={`Rename ${session.name}`}
          title="Rename"
          onClick={start}
        >
          ✎
        </button>
      </span>
      {props.withDescription && session.description && (
        <div className="small-text muted session-description" data-testid="session-description">
          {session.description}
        </div>
      )}
    </div>
  );
}
