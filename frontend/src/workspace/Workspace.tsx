// The workspace view of one session: header and the three panes (chat, files, terminal).
import { ChatPane } from "../chat/ChatPane";
import { FilesPane } from "../files/FilesPane";
import { TerminalPane } from "../terminal/TerminalPane";
import { Link } from "../components/Link";

export default function Workspace(props: { sessionId: string }): JSX.Element {
  const { sessionId } = props;
  return (
    <div className="workspace" data-testid="workspace" data-session-id={sessionId}>
      <div className="workspace-bar">
        <Link href="/" data-testid="back-to-sessions" className="btn ghost small">
          ← Sessions
        </Link>
        <span className="workspace-title">{sessionId}</span>
      </div>
      <div className="workspace-panes">
        <section className="pane" aria-label="Chat">
          <ChatPane sessionId={sessionId} />
        </section>
        <section className="pane" aria-label="Files">
          <FilesPane sessionId={sessionId} />
        </section>
        <section className="pane" aria-label="Terminal">
          <TerminalPane sessionId={sessionId} active />
        </section>
      </div>
    </div>
  );
}
