// The store's types that the API layer names (its settings and its commit metrics). The API
// talks to the service only (DESIGN.md), so it reaches them through here.
export type { Durability } from '../store/db.js'
export type { CommitStats } from '../store/writer.js'
