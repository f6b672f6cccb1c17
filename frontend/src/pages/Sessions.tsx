// The workspace picker: the user's sessions (most recently used first, with a filter box) with
// live state, and the templates to start a new one.
import { useEffect, useState } from "react";
import { api, type Template } from "../api";
import { ErrorBanner } from "../components/ErrorBanner";
import { SessionTable, templateName } from "../components/SessionTable";
import { filterSessions, usePolledSessions } from "../sessions";

export function SessionsPage(): JSX.Element {
  const [creating, setCreating] = useState<string | null>(null);
  const { sessions, error, replace } = usePolledSessions(api.sessions, creating !== null);
  const [templates, setTemplates] = useState<Template[] | null>(null);
  const [templatesError, setTemplatesError] = useState<unknown>(undefined);
  const [createError, setCreateError] = useState<unknown>(undefined);
  const [filter, setFilter] = useState("");
  const shown = sessions && filterSessions(sessions, filter, (id) => templateName(templates, id));

  useEffect(() => {
    api.templates().then(setTemplates, setTemplatesError);
  }, []);

  const create = async (template: Template) => {
    setCreating(template.id);
    setCreateError(undefined);
    try {
      const session = await api.createSession(template.id);
      replace(session.id, session);
    } catch (err) {
      setCreateError(err);
    } finally {
      setCreating(null);
    }
  };

  return (
    <main className="page">
      <h1>Sessions</h1>
      <ErrorBanner error={error} />
      {sessions === null && !error && <p className="muted">Loading sessions…</p>}
      {sessions !== null && sessions.length === 0 && (
        <div className="empty card">
          <p>You have no sessions yet. Pick a template below to start one.</p>
        </div>
      )}
      {sessions !== null && sessions.length > 0 && (
        <>
          <div className="session-filter">
            <input
              type="search"
              data-testid="session-filter"
              aria-label="Filter sessions"
              placeholder="Filter by name, description or template"
              value={filter}
              onChange={(e) => setFilter(e.target.value)}
              onKeyDown={(e) => {
                if (e.key === "Escape") setFilter("");
              }}
            />
          </div>
          {shown && shown.length > 0 ? (
            <SessionTable sessions={shown} templates={templates} onChanged={replace} />
          ) : (
            <p className="muted" data-testid="session-filter-empty">
              No session matches “{filter.trim()}”.
            </p>
          )}
        </>
      )}

      <div className="section-head">
        <h2>New session</h2>
      </div>
      <ErrorBanner error={templatesError} />
      <ErrorBanner error={createError} onDismiss={() => setCreateError(undefined)} />
      {templates === null && !templatesError && <p className="muted">Loading templates…</p>}
      <div className="template-grid">
        {templates?.map((template) => (
          <button
            key={template.id}
            className="template-card"
            data-testid={`template-card-${template.id}`}
            disabled={creating !== null}
            onClick={() => void create(template)}
          >
            <span className="template-name">{template.name}</span>
            <span className="template-description">{template.description}</span>
            <span className="template-cta">{creating === template.id ? "Creating…" : "Start session →"}</span>
          </button>
        ))}
      </div>
      {templates?.length === 0 && <p className="muted">No templates are installed.</p>}
    </main>
  );
}

