// React 19 no longer declares a global `JSX` namespace; the pane contract (contracts.md) is written
// with `JSX.Element`, so the alias is declared here once for every module.
import type { JSX as ReactJSX } from "react";

declare global {
  namespace JSX {
    type Element = ReactJSX.Element;
  }
}
