// An in-app link: a real <a href> (so middle click and copy link work) that navigates in place.
import { linkClick } from "../router";

export function Link(props: React.AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }): JSX.Element {
  const { onClick, ...rest } = props;
  return (
    <a
      {...rest}
      onClick={(event) => {
        onClick?.(event);
        linkClick(event);
      }}
    />
  );
}
