/**
 * Joins an encoder's many small chunks (often one per event) into chunks of about `size`
 * characters, so a consumer writing to a socket or a file makes thousands of writes for a
 * million events rather than a million. Memory stays bounded by `size`.
 */
export async function* batch(chunks: AsyncIterable<string>, size = 64 * 1024): AsyncGenerator<string, void, undefined> {
  let parts: string[] = []
  let length = 0
  for await (const c of chunks) {
    parts.push(c)
    length += c.length
    if (length >= size) {
      yield parts.join('')
      parts = []
      length = 0
    }
  }
  if (length > 0) yield parts.join('')
}
