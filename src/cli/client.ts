/**
 * The lab server's HTTP API as the CLI sees it: JSON in, JSON out, the server's error body
 * kept whole (code, message, field) so commands can map refusals, and transport failures
 * turned into advice about the server and the token.
 */
import { CliError } from './errors.js'

export interface Connection {
  url: string
  token: string | undefined
}

/** An error reply of the API: `{"error": {"code", "message", "field"?}}` with its status. */
export class ApiError extends CliError {
  override name = 'ApiError'
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly field: string | undefined,
    hint?: string,
  ) {
    super(`${detail} (HTTP ${status} ${code}${field ? `, field ${field}` : ''})${hint ? `; ${hint}` : ''}`)
  }
}

export class Client {
  constructor(readonly conn: Connection) {}

  get<T>(path: string): Promise<T> {
    return this.json<T>('GET', path)
  }

  post<T>(path: string, body: unknown, headers: Record<string, string> = {}): Promise<T> {
    return this.json<T>('POST', path, body, headers)
  }

  async delete(path: string): Promise<void> {
    await this.send('DELETE', path)
  }

  /** The raw response of a successful request, for a body read as a stream. */
  async send(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    const url = new URL(path, this.conn.url)
    let res: Response
    try {
      res = await fetch(url, {
        method,
        headers: {
          ...(this.conn.token ? { authorization: `Bearer ${this.conn.token}` } : {}),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
    } catch (err) {
      throw unreachable(this.conn.url, err)
    }
    if (res.ok) return res
    throw await apiError(res, this.conn)
  }

  private async json<T>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<T> {
    const res = await this.send(method, path, body, headers)
    return (await res.json()) as T
  }
}

function unreachable(url: string, err: unknown): CliError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause
  const why = cause?.code ?? cause?.message ?? (err as Error).message
  return new CliError(`cannot reach the kmaplab server at ${url} (${why}): is \`kmaplab serve\` running there? Set --url or KMAPLAB_URL to point elsewhere.`)
}

async function apiError(res: Response, conn: Connection): Promise<ApiError> {
  const text = await res.text()
  let error: { code?: string; message?: string; field?: string } = {}
  try {
    error = (JSON.parse(text) as { error?: typeof error }).error ?? {}
  } catch {
    // Not this API's error shape (a proxy, another server): show what came back.
  }
  const hint =
    res.status !== 401 ? undefined : conn.token ? 'the token was not accepted: check --token or KMAPLAB_TOKEN' : 'this server needs a token: pass --token or set KMAPLAB_TOKEN'
  return new ApiError(res.status, error.code ?? 'http_error', error.message ?? (text.slice(0, 200) || res.statusText), error.field, hint)
}
