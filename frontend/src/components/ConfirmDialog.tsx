// A modal confirmation on the native <dialog>: focus stays inside, Esc cancels.
import { useEffect, useRef } from "react";

export function ConfirmDialog(props: {
  title: string;
  children?: React.ReactNode;
  confirmLabel: string;
  danger?: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}): JSX.Element {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => dialog?.close();
  }, []);
  return (
    <dialog
      ref={ref}
      className="dialog"
      aria-labelledby="confirm-title"
      onCancel={(event) => {
        event.preventDefault();
        props.onCancel();
      }}
    >
      <h2 id="confirm-title">{props.title}</h2>
      {props.children && <div className="dialog-body">{props.children}</div>}
      <div className="dialog-actions">
        <button className="btn" data-testid="confirm-cancel" onClick={props.onCancel} autoFocus>
          Cancel
        </button>
        <button className={props.danger ? "btn danger-solid" : "btn primary"} data-testid="confirm-ok" onClick={props.onConfirm}>
          {props.confirmLabel}
        </button>
      </div>
    </dialog>
  );
}
