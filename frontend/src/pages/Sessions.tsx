// The workspace picker (sessions list and templates).
export function SessionsPage(): JSX.Element {
  return (
    <main className="page">
      <h1>Sessions</h1>
    </main>
  );
}
