// Placeholder until helper "files" lands the real pane at this path.
export function FilesPane(props: { sessionId: string }): JSX.Element {
  return <div className="pane-placeholder">Files for {props.sessionId}</div>;
}
