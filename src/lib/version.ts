/** Pontoon's version: injected by the bundler (scripts/bundle.mjs), "dev" when run from tsc output. */
declare const PONTOON_VERSION: string | undefined;

export const pontoonVersion: string = typeof PONTOON_VERSION === 'string' ? PONTOON_VERSION : 'dev';
