// Fixed texts the filter needs only off the path that serves a credential: see message().

/**
 * A fixed text, written in the source as message("the text"): an error or log message, or a name
 * used only at configuration (a configuration field's, a metric's). The build's transform,
 * scripts/utf8-messages.mjs, replaces the literal with its address in static memory, where it is
 * stored as one byte of size and its UTF-8 bytes: less than half of what a string literal costs
 * (UTF-16 behind a 20-byte header). The string is made here, when the call runs, so never use it on
 * the path that serves a credential.
 */
export function message(at: usize): string {
  return String.UTF8.decodeUnsafe(at + 1, load<u8>(at));
}
