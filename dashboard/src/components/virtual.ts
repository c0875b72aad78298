// A Preact hook over @tanstack/virtual-core (the library ships adapters for
// React, Vue, Solid… but not Preact): the Logs and Live lists and the trace
// waterfall render only the rows in view, so 100k rows cost what 40 do.
import { useLayoutEffect, useReducer, useState } from 'preact/hooks';
import { Virtualizer, elementScroll, observeElementOffset, observeElementRect, type VirtualizerOptions } from '@tanstack/virtual-core';

type Options = Pick<VirtualizerOptions<HTMLElement, HTMLElement>, 'count' | 'getScrollElement' | 'estimateSize' | 'overscan' | 'getItemKey' | 'initialRect'>;

/** A virtualiser over the element `getScrollElement` returns. Keep
 *  `getItemKey` stable while the rows are: a new one rebuilds every offset. */
export function useVirtualizer(opts: Options): Virtualizer<HTMLElement, HTMLElement> {
  const [, rerender] = useReducer((n: number) => n + 1, 0);
  const full: VirtualizerOptions<HTMLElement, HTMLElement> = {
    observeElementRect,
    observeElementOffset,
    scrollToFn: elementScroll,
    ...opts,
    onChange: () => rerender(0),
  };
  const [v] = useState(() => new Virtualizer<HTMLElement, HTMLElement>(full));
  v.setOptions(full);
  useLayoutEffect(() => v._didMount(), []);
  useLayoutEffect(() => v._willUpdate());
  return v;
}
