// Placeholder until helper "chat" lands the real pane at this path.
export function ChatPane(props: { sessionId: string }): JSX.Element {
  return <div className="pane-placeholder">Chat for {props.sessionId}</div>;
}
