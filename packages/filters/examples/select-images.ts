import { adaptorFromTree, mapField, nonEmpty, parseAll } from '@berth/filters';

export interface ImageSummary {
  name: string;
  digest: string;
  labels: Record<string, string>;
}

/**
 * Selects images with containerd's filter syntax, as `ctr images ls <filters>` sends it: the
 * filters are alternatives, the selectors within one (joined by `,`) must all hold.
 */
export function selectImages(images: readonly ImageSummary[], filters: readonly string[]): string[] {
  const filter = parseAll(filters);
  return images
    .filter((image) =>
      filter.match(
        adaptorFromTree({
          name: nonEmpty(image.name),
          target: { digest: nonEmpty(image.digest) },
          labels: mapField(image.labels),
        }),
      ),
    )
    .map((image) => image.name);
}
