// A windowed list of fixed-height rows inside a scroll container the caller owns: only the rows
// the viewport shows (and OVERSCAN either side) are in the DOM, each placed absolutely in a
// sizer as tall as the whole list, so the scrollbar is true. The arithmetic is windowing.ts's.
import { useCallback, useEffect, useImperativeHandle, useLayoutEffect, useRef, useState } from "react";
import type { CSSProperties, RefObject } from "react";
import { anchoredScrollTop, scrollToReveal, windowRange, type Viewport, type WindowRange } from "./windowing";

export interface WindowedHandle {
  /** Scrolls the least distance that shows row `index` whole. */
  reveal(index: number): void;
  /** The viewport, measured from the first row. */
  viewport(): Viewport;
}

export function WindowedRows(props: {
  /** The element that scrolls (it may hold other content above the rows). */
  scroller: RefObject<HTMLElement | null>;
  count: number;
  rowHeight: number;
  /** A row rendered even when scrolled out of view: the focused one, so focus is not lost. */
  pinned?: number;
  handle?: RefObject<WindowedHandle | null>;
  /** The rows' keys, in order: when they change (a folder changed on disk), the rows in view stay
   * where they are on screen rather than shifting by what was added or removed above them. */
  keys?: readonly string[];
  /** Told the rows rendered (`start` to `end`, exclusive; the pinned one aside) when they change:
   * the caller loads what they stand for. */
  onRange?: (start: number, end: number) => void;
  /** One row; `style` places it and must be applied to its outermost element. */
  renderRow: (index: number, style: CSSProperties) => JSX.Element;
}): JSX.Element {
  const { scroller, count, rowHeight, pinned, renderRow, keys, onRange } = props;
  const sizer = useRef<HTMLDivElement>(null);
  const shownKeys = useRef(keys);
  const [range, setRange] = useState<WindowRange>({ start: 0, end: 0 });

  const viewport = useCallback((): Viewport => {
    const el = scroller.current;
    const box = sizer.current;
    if (!el || !box) return { scrollTop: 0, height: 0 };
    // Where the rows start inside the scrolled content (anything above them scrolls too).
    const offset = box.getBoundingClientRect().top - el.getBoundingClientRect().top + el.scrollTop;
    return { scrollTop: el.scrollTop - offset, height: el.clientHeight };
  }, [scroller]);

  const measure = useCallback(() => {
    const next = windowRange(count, rowHeight, viewport());
    setRange((old) => (old.start === next.start && old.end === next.end ? old : next));
  }, [count, rowHeight, viewport]);

  useLayoutEffect(() => {
    measure();
    const el = scroller.current;
    if (!el) return;
    el.addEventListener("scroll", measure, { passive: true });
    const resize = new ResizeObserver(measure);
    resize.observe(el);
    return () => {
      el.removeEventListener("scroll", measure);
      resize.disconnect();
    };
  }, [measure, scroller]);

  // Before paint: the rows changed; scroll so that the first row in view stays put.
  useLayoutEffect(() => {
    const before = shownKeys.current;
    shownKeys.current = keys;
    const el = scroller.current;
    if (!before || !keys || before === keys || !el) return;
    const view = viewport();
    const top = anchoredScrollTop(before, keys, rowHeight, view.scrollTop);
    if (top === null) return;
    el.scrollTop += top - view.scrollTop;
    measure();
  }, [keys, rowHeight, scroller, viewport, measure]);

  // After each render: the caller's rows may have changed under the same range (stand-ins).
  useEffect(() => {
    onRange?.(range.start, Math.min(range.end, count));
  });

  useImperativeHandle(
    props.handle,
    () => ({
      viewport,
      reveal(index: number) {
        const el = scroller.current;
        if (!el) return;
        const view = viewport();
        const top = scrollToReveal(index, rowHeight, view);
        if (top === null) return;
        el.scrollTop += top - view.scrollTop;
        measure();
      },
    }),
    [viewport, measure, rowHeight, scroller],
  );

  const place = (index: number): CSSProperties => ({
    position: "absolute",
    top: index * rowHeight,
    left: 0,
    right: 0,
    height: rowHeight,
  });
  const rows: JSX.Element[] = [];
  const end = Math.min(range.end, count);
  if (pinned !== undefined && pinned >= 0 && pinned < count && pinned < range.start) rows.push(renderRow(pinned, place(pinned)));
  for (let i = range.start; i < end; i++) rows.push(renderRow(i, place(i)));
  if (pinned !== undefined && pinned >= end && pinned < count) rows.push(renderRow(pinned, place(pinned)));

  return (
    <div ref={sizer} className="windowed-rows" style={{ position: "relative", height: count * rowHeight }}>
      {rows}
    </div>
  );
}
