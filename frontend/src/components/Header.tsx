// The top bar: product name, navigation, theme toggle and the account menu (account page, sign out).
import { useEffect, useRef, useState } from "react";
import { signOut as signOutEverywhere, type User } from "../api";
import type { Route } from "../router";
import { Link } from "./Link";
import { ThemeToggle } from "./ThemeToggle";

export function Header(props: { user: User; route: Route; onSignedOut: (notice: string | null) => void }): JSX.Element {
  const { user, route } = props;
  const [menuOpen, setMenuOpen] = useState(false);
  const menuRef = useRef<HTMLDivElement>(null);
  const buttonRef = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    if (!menuOpen) return;
    const onPointer = (event: PointerEvent) => {
      if (!menuRef.current?.contains(event.target as Node)) setMenuOpen(false);
    };
    const onKey = (event: KeyboardEvent) => {
      if (event.key === "Escape") {
        setMenuOpen(false);
        buttonRef.current?.focus();
        return;
      }
      if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
      const items = Array.from(menuRef.current?.querySelectorAll<HTMLElement>("[role=menuitem]") ?? []);
      if (items.length === 0) return;
      event.preventDefault();
      const index = items.indexOf(document.activeElement as HTMLElement);
      const step = event.key === "ArrowDown" ? 1 : -1;
      items[(index + step + items.length) % items.length].focus();
    };
    menuRef.current?.querySelector<HTMLElement>("[role=menuitem]")?.focus();
    document.addEventListener("pointerdown", onPointer);
    document.addEventListener("keydown", onKey);
    return () => {
      document.removeEventListener("pointerdown", onPointer);
      document.removeEventListener("keydown", onKey);
    };
  }, [menuOpen]);

  const signOut = async () => {
    setMenuOpen(false);
    // Even if the request failed the user asked to leave: show the sign-in page (unless the
    // browser is leaving for the provider's end-session page).
    if (await signOutEverywhere()) props.onSignedOut(null);
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
        <Link href="/usage" aria-current={route.name === "usage" ? "page" : undefined}>
          Usage
        </Link>
        {user.role === "admin" && (
          <Link href="/admin/users" aria-current={isAdminRoute ? "page" : undefined}>
            Admin
          </Link>
        )}
      </nav>
      <div className="topbar-right">
        <ThemeToggle />
        <div className="menu" ref={menuRef}>
          <button
            ref={buttonRef}
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
