// One way to show an error: a red banner with the API's message (and code, for reports).
import { ApiError, errorMessage } from "../api";

export function ErrorBanner(props: { message?: string; error?: unknown; onDismiss?: () => void }): JSX.Element | null {
  const { error } = props;
  if (props.message === undefined && error === undefined) return null;
  const message = props.message ?? errorMessage(error);
  const code = error instanceof ApiError ? error.code : null;
  return (
    <div className="error-banner" role="alert" data-testid="error">
      <span className="error-text">{message}</span>
      {code && <span className="error-code">{code}</span>}
      {props.onDismiss && (
        <button className="btn ghost small" onClick={props.onDismiss} aria-label="Dismiss error">
          ×
        </button>
      )}
    </div>
  );
}
