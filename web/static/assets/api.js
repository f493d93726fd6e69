// api.js — JSON requests to the gateway for the fleet and firmware pages:
// same-origin cookies, no caching, and the gateway's {"error": …} text as
// the message of every failure, so the page can show it as it is.

/** ApiError is a failed request: status 0 when the gateway could not be reached. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

/** request sends one request and resolves to the parsed JSON answer (null
 * for an empty one); it rejects with an ApiError carrying the gateway's words. */
export async function request(method, url, body, { signal, raw } = {}) {
  const init = { method, credentials: 'same-origin', cache: 'no-store', signal, headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    if (raw) {
      init.body = body;
      init.headers['Content-Type'] = 'application/octet-stream';
    } else {
      init.body = JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
  }
  let r;
  try {
    r = await fetch(url, init);
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'the gateway could not be reached');
  }
  const text = await r.text().catch(() => '');
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!r.ok) {
    const why = (data && typeof data.error === 'string' && data.error) || text.trim().slice(0, 200) || r.statusText || 'request failed';
    throw new ApiError(r.status, why);
  }
  return data;
}

export const get = (url, o) => request('GET', url, undefined, o);
export const post = (url, body, o) => request('POST', url, body, o);
export const del = (url, o) => request('DELETE', url, undefined, o);
