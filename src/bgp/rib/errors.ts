import { PontoonError } from '../../lib/errors.js';

/** A caller broke the RIB's contract (unknown peer, malformed route): a bug, not a peer's fault. */
export class RibError extends PontoonError {}

export class UnknownPeerError extends RibError {
  readonly peerId: string;

  constructor(peerId: string, verb: string) {
    super(`failed to ${verb} peer "${peerId}": the RIB has no such peer (call addPeer first)`);
    this.peerId = peerId;
  }
}
