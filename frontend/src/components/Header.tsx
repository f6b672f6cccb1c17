// The top bar: product name, navigation, theme toggle and the account menu (account page, sign out).
import { useEffect, useRef, useState } from "react";
import { api, type User } from "../api";
import type { Route } from "../router";
import { applyTheme, type Theme } from "../theme";
import { Link } from "./Link";

export function Header(props: { user: User; route: Route; onSignedOut: (notice: string | null) => void }): JSX.Element {
  const { user, route } = props;
  const [menuOpen, setMenuOpen] = useState(false);
  const [theme, setTheme] = useState<Theme>(() => (document.documentElement.dataset.theme === "dark" ? "dark" : "light"));
  const menuRef = useRef<HTMLDivElement>(null);

  useEffect(() => {
    if (!menuOpen) return;
    const onPointer = (event: PointerEvent) => {
      if (!menuRef.current?.contains(event.target as Node)) setMenuOpen(false);
    };
    const onKey = (event: KeyboardEvent) => {
      if (event.key === "Escape") setMenuOpen(false);
    };
    document.addEventListener("pointerdown", onPointer);
    document.addEventListener("keydown", onKey);
    return () => {
      document.removeEventListener("pointerdown", onPointer);
      document.removeEventListener("keydown", onKey);
    };
  }, [menuOpen]);

  const toggleTheme = () => {
    const next: Theme = theme === "dark" ? "light" : "dark";
    applyTheme(next, true);
    setTheme(next);
  };

  const signOut = async () => {
    setMenuOpen(false);
    try {
      await api.logout();
    } finally {
      // Even if the request failed the user asked to leave: show the sign-in page.
      props.onSignedOut(null);
    }
  };

  const isAdminRoute = route.name.startsWith("admin-");
  return (
    <header className="topbar">
      <Link href="/" className="brand">
        <span className="brand-mark" aria-hidden="true">◉</span> Octo
      </Link>
      <nav className="topnav" aria-label="Main">
        <Link href="/" aria-current={route.name === "sessions" ? "page" : undefined}>
          Sessions
        </Link>
        {user.role === "admin" && (
          <Link href="/admin/users" aria-current={isAdminRoute ? "page" : undefined}>
            Admin
          </Link>
        )}
      </nav>
      <div className="topbar-right">
        <button
          className="btn ghost icon"
          data-testid="theme-toggle"
          onClick={toggleTheme}
          aria-label={theme === "dark" ? "Switch to light theme" : "Switch to dark theme"}
          title={theme === "dark" ? "Light theme" : "Dark theme"}
        >
          {theme === "dark" ? "☀" : "☾"}
        </button>
        <div className="menu" ref={menuRef}>
          <button
            className="btn ghost"
            data-testid="account-menu"
            aria-haspopup="menu"
            aria-expanded={menuOpen}
            onClick={() => setMenuOpen((open) => !open)}
          >
            <span className="avatar" aria-hidden="true">{user.name.slice(0, 1).toUpperCase()}</span>
            {user.name}
          </button>
          {menuOpen && (
            <div className="menu-popup" role="menu">
              <Link href="/account" role="menuitem" onClick={() => setMenuOpen(false)}>
                Account
              </Link>
              <button role="menuitem" data-testid="signout" onClick={() => void signOut()}>
                Sign out
              </button>
            </div>
          )}
        </div>
      </div>
    </header>
  );
}
