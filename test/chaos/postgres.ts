// The chaos rounds' PostgreSQL: the restartable server of the tests' helper.
export { createPostgresServer as createPostgres } from '../helpers/postgres';
export type { PostgresServer as ChaosPostgres } from '../helpers/postgres';
