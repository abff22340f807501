import { PontoonError } from '../lib/errors.js';

/** The container's config cannot be built (Kubernetes: CreateContainerConfigError). */
export class ContainerConfigError extends PontoonError {}
