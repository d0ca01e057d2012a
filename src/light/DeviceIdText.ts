/**
 * What `device_id` may hold: a UUID, with a BOM or stray spaces around it
 * tolerated. Effect-free, so the core's device identity
 * (src/oauth/DeviceIdentity.ts) and the CLI's fast `status` read the file
 * by one rule.
 *
 * @since 0.2.0
 */

/** Largest `device_id` read: a UUID and a newline, with room for a BOM or stray spaces. */
export const DEVICE_ID_LIMIT_BYTES = 1024

/** A device id: a UUID, any case. */
export const DEVICE_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** The id in `device_id`'s text, or `undefined` when the text is not one (damaged). */
export const deviceIdOfText = (text: string): string | undefined => {
  const s = text.replace(/^\uFEFF/, "").trim()
  return DEVICE_ID_PATTERN.test(s) ? s : undefined
}
