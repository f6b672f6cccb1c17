// Placeholder until helper "files" lands the real pane at this path.
export function TerminalPane(props: { sessionId: string; active?: boolean }): JSX.Element {
  return <div className="pane-placeholder">Terminal for {props.sessionId}</div>;
}
