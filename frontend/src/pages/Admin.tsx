// Admin pages: users, invite codes, all sessions.
import type { User } from "../api";
import type { Route } from "../router";

export function AdminPage(props: { route: Route; self: User }): JSX.Element {
  return (
    <main className="page">
      <h1>Admin</h1>
      <p className="muted">{props.route.name}</p>
    </main>
  );
}
