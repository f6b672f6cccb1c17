// The conversation's scrolling list, windowed: only the messages near the viewport are in the DOM
// (and the pinned ones: the message holding focus, those with a pending permission request or
// question), with blank gaps as tall as the messages they stand for. Heights are measured once a
// message is rendered (and again when it resizes); unmeasured ones are estimated from their
// content. When heights above the viewport change, the message the user looks at is kept in place
// (the anchor); while the user is at the end, new content keeps the end in view. The arithmetic is
// windowing.ts's.
//
// Rows are `MessageView`s, memoized on their entry (which the reducer keeps identical while it does
// not change): a streamed delta re-renders only the message it grows. Find-in-page sees only the
// rendered messages.
import { useCallback, useLayoutEffect, useRef, useState, type FocusEvent, type MouseEvent, type ReactNode } from "react";
import type { Part } from "@opencode-ai/sdk/v2/client";
import { MessageView, type PermissionHandlers } from "./MessageView";
import type { MessageEntry } from "./state";
import {
  anchorAt,
  anchoredTop,
  growRange,
  isAtBottom,
  rowAt,
  rowLayout,
  segments,
  visibleRows,
  type RowLayout,
  type RowRange,
} from "./windowing";

/** Rendered beyond each edge of the viewport, as a share of its height. */
const OVERSCAN = 0.5;
/** Rows added to the DOM per frame at most: a reply with a long highlighted diff takes ~10 ms to
 * render and lay out, and a conversation opening at once was one long task. */
const MAX_NEW_ROWS = 3;

export function MessageList(props: {
  entries: MessageEntry[];
  permissions: PermissionHandlers;
  /** Messages always rendered: those with a pending permission request or question. */
  pinned: ReadonlySet<string>;
  /** The open conversation: another one opens at its end. */
  conversation: string | undefined;
  busy: boolean;
  /** After the messages (the prompt on its way, notes, requests of no shown tool call). */
  children?: ReactNode;
  /** Present while earlier messages remain to be loaded: `load` is called when the list comes
   * within a viewport of its top (and from the button there). */
  older?: { loading: boolean; load: (asked?: boolean) => void };
}): JSX.Element {
  const { entries, permissions, pinned, conversation, busy, children, older } = props;
  const olderRef = useRef(older);
  olderRef.current = older;
  const scroller = useRef<HTMLDivElement>(null);
  const list = useRef<HTMLDivElement>(null);
  // Measured heights by message id, and the rendered rows by message id.
  const heights = useRef(new Map<string, number>()).current;
  const rows = useRef(new Map<string, HTMLElement>()).current;
  const [range, setRange] = useState<RowRange>({ start: 0, end: 0 });
  // The range asked for last, and the frame that renders the next step while rows are added a
  // few at a time (growRange).
  const shownRange = useRef<RowRange>(range);
  const growing = useRef<number | undefined>(undefined);
  const [focused, setFocused] = useState<string>();
  // At the end: new content keeps the end in view (until the user scrolls up).
  const stuck = useRef(true);
  // The layout the page showed after the last settle: where the user's scroll position is.
  const settled = useRef<RowLayout | undefined>(undefined);

  const layout = rowLayout(
    entries.map((entry) => entry.id),
    (i) => heights.get(entries[i].id) ?? estimateHeight(entries[i]),
  );
  const current = useRef<RowLayout>(layout);
  current.current = layout;
  const entriesRef = useRef(entries);
  entriesRef.current = entries;

  const shownConversation = useRef(conversation);
  if (shownConversation.current !== conversation) {
    shownConversation.current = conversation;
    stuck.current = true;
    settled.current = undefined;
  }

  /** The viewport in list coordinates. */
  const view = useCallback(() => {
    const el = scroller.current;
    if (!el) return { top: 0, height: 0 };
    return { top: el.scrollTop - (list.current?.offsetTop ?? 0), height: el.clientHeight };
  }, []);

  const updateRange = useCallback(() => {
    const { top, height } = view();
    // Near the top with earlier messages to come: ask for them (the anchor keeps the view put
    // when they arrive above it).
    const el = scroller.current;
    if (el && olderRef.current && !olderRef.current.loading && el.scrollTop < el.clientHeight) olderRef.current.load();
    const next = visibleRows(current.current, top, height, height * OVERSCAN);
    const old = shownRange.current;
    if (old.start === next.start && old.end === next.end) return;
    // Many rows at once (a conversation opened, a jump): a few per frame, those in view first.
    const rows = current.current.keys.length;
    const pivot = stuck.current ? rows - 1 : Math.min(rows - 1, rowAt(current.current, Math.max(0, top)));
    const step = growRange(old, next, pivot, MAX_NEW_ROWS);
    if (step.start === next.start && step.end === next.end) {
      shownRange.current = next;
      setRange(next);
      return;
    }
    if (growing.current !== undefined) return; // the next step comes with the next frame
    shownRange.current = step;
    setRange(step);
    growing.current = requestAnimationFrame(() => {
      growing.current = undefined;
      updateRangeRef.current();
    });
  }, [view]);
  const updateRangeRef = useRef(updateRange);
  updateRangeRef.current = updateRange;
  useLayoutEffect(
    () => () => {
      if (growing.current !== undefined) cancelAnimationFrame(growing.current);
    },
    [],
  );

  /** Measures the rendered rows; then holds the end or the anchor in view and renders the rows
   * the viewport now shows. After each render and each resize, before the browser paints.
   *
   * The anchor is taken here, from the layout the page showed until now and the scroll position
   * the user (or a script) left, not at scroll events: a render can come between a scroll and
   * its event, and an anchor taken earlier would undo that scroll. */
  const settle = useCallback(() => {
    const el = scroller.current;
    if (!el) return;
    const listTop = list.current?.offsetTop ?? 0;
    const top = el.scrollTop - listTop;
    const anchor = !stuck.current && settled.current ? anchorAt(settled.current, top) : undefined;
    let changed = false;
    for (const [key, row] of rows) {
      const height = row.getBoundingClientRect().height;
      if (Math.abs((heights.get(key) ?? -1) - height) > 0.5) {
        heights.set(key, height);
        changed = true;
      }
    }
    if (changed) {
      const entriesNow = entriesRef.current;
      current.current = rowLayout(
        entriesNow.map((entry) => entry.id),
        (i) => heights.get(entriesNow[i].id) ?? estimateHeight(entriesNow[i]),
      );
    }
    if (stuck.current) {
      const end = el.scrollHeight - el.clientHeight;
      if (el.scrollTop < end) el.scrollTop = end;
    } else if (anchor) {
      const target = anchoredTop(current.current, anchor);
      if (target !== undefined && Math.abs(target - top) >= 1) el.scrollTop = target + listTop;
    }
    settled.current = current.current;
    updateRange();
  }, [heights, rows, updateRange]);

  useLayoutEffect(settle);

  // Resizes not caused by a render of ours: a tool card opened, Markdown's renderer arriving, the
  // pane resized.
  const observer = useRef<ResizeObserver | undefined>(undefined);
  useLayoutEffect(() => {
    const resize = new ResizeObserver(() => settle());
    observer.current = resize;
    if (scroller.current) resize.observe(scroller.current);
    for (const row of rows.values()) resize.observe(row);
    return () => {
      resize.disconnect();
      observer.current = undefined;
    };
  }, [rows, settle]);

  const rowRef = useCallback(
    (el: HTMLDivElement | null) => {
      if (!el) return;
      const key = el.dataset.rowKey!;
      rows.set(key, el);
      observer.current?.observe(el);
      return () => {
        observer.current?.unobserve(el);
        if (rows.get(key) === el) rows.delete(key);
      };
    },
    [rows],
  );

  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    stuck.current = isAtBottom(el);
    updateRange();
  };

  // Opening a tool card or showing a whole output is reading, not following: the view stays where
  // it is (the anchor) instead of jumping to the end of what opened.
  const onClickCapture = (event: MouseEvent<HTMLDivElement>) => {
    if ((event.target as Element).closest("summary, .chat-output-more")) stuck.current = false;
  };

  // The message holding focus stays rendered when scrolled away, so focus is not lost.
  const onFocus = (event: FocusEvent<HTMLDivElement>) => {
    const key = (event.target as Element).closest<HTMLElement>("[data-row-key]")?.dataset.rowKey;
    setFocused(key);
  };
  const onBlur = (event: FocusEvent<HTMLDivElement>) => {
    if (!event.currentTarget.contains(event.relatedTarget as Node | null)) setFocused(undefined);
  };

  const pinnedRows: number[] = [];
  for (const key of pinned) {
    const row = layout.index.get(key);
    if (row !== undefined) pinnedRows.push(row);
  }
  if (focused !== undefined && layout.index.has(focused)) pinnedRows.push(layout.index.get(focused)!);

  return (
    <div
      className="chat-messages"
      data-testid="chat-messages"
      ref={scroller}
      onScroll={onScroll}
      tabIndex={0}
      aria-label="Messages"
      aria-busy={busy}
    >
      {older && entries.length > 0 && (
        <div className="chat-older" data-testid="chat-older">
          {older.loading ? (
            <p className="chat-note" role="status">
              Loading earlier messages…
            </p>
          ) : (
            <button type="button" className="btn ghost small" onClick={() => older.load(true)}>
              Load earlier messages
            </button>
          )}
        </div>
      )}
      {entries.length > 0 && (
        <div className="chat-rows" ref={list} onFocus={onFocus} onBlur={onBlur} onClickCapture={onClickCapture}>
          {segments(layout, range, pinnedRows).map((segment) =>
            "gap" in segment ? (
              <div
                key={`gap ${layout.keys[segment.first]}`}
                className="chat-gap"
                style={{ height: segment.gap }}
                aria-hidden="true"
              />
            ) : (
              <div key={layout.keys[segment.row]} className="chat-row" data-row-key={layout.keys[segment.row]} ref={rowRef}>
                <MessageView entry={entries[segment.row]} permissions={permissions} />
              </div>
            ),
          )}
        </div>
      )}
      {children}
    </div>
  );
}

// Rough heights (px) of what a message shows, until it is measured: close enough that the
// scrollbar tells the truth about a long conversation. Cached per entry object (the reducer keeps
// an unchanged message's entry).
const estimates = new WeakMap<MessageEntry, number>();

export function estimateHeight(entry: MessageEntry): number {
  let height = estimates.get(entry);
  if (height === undefined) {
    height = 16 + entry.parts.reduce((sum, part) => sum + estimatePart(part), 0);
    estimates.set(entry, height);
  }
  return height;
}

const LINE = 20;
/** markdown.ts's: it is loaded with the first reply, this estimate is needed before. */
const CODE_LINES = 200;
const WRAP = 100; // characters per line, roughly, at the pane's usual width

function estimatePart(part: Part): number {
  switch (part.type) {
    case "text":
      return part.text ? LINE * textLines(part.text) + 8 : 0;
    case "tool":
      return 40;
    case "reasoning":
      return part.text.trim() ? 32 : 0;
    case "file":
    case "retry":
    case "subtask":
      return 24;
    default:
      return 0;
  }
}

/** Lines of Markdown as shown: prose wraps, code does not, and a long code block shows its
 * first CODE_LINES lines (markdown.ts). Linear, without a string or regex per line: a
 * conversation's first layout estimates every message. */
function textLines(text: string): number {
  let lines = 0;
  let fence = false;
  let code = 0;
  let start = 0;
  while (start <= text.length) {
    const end = text.indexOf("\n", start);
    const stop = end < 0 ? text.length : end;
    if (isFence(text, start)) {
      fence = !fence;
      code = 0;
      lines += 1;
    } else if (fence) {
      code += 1;
      if (code <= CODE_LINES) lines += 1;
      else if (code === CODE_LINES + 1) lines += 2; // the "show all" button
    } else {
      lines += Math.max(1, Math.ceil((stop - start) / WRAP));
    }
    if (end < 0) break;
    start = end + 1;
  }
  return lines;
}

/** Whether the line at `at` opens or closes a code fence (``` or ~~~, indented up to 3 spaces). */
function isFence(text: string, at: number): boolean {
  let i = at;
  while (i < at + 3 && text.charCodeAt(i) === 32) i++;
  const c = text.charCodeAt(i);
  return (c === 96 || c === 126) && text.charCodeAt(i + 1) === c && text.charCodeAt(i + 2) === c;
}
