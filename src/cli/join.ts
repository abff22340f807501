/**
 * `pontoon join`: a fresh host becomes a node, as `kubeadm join` does it.
 *
 *   1. discovery: read kube-public/cluster-info without credentials (the TLS server is not
 *      trusted yet) and trust the CA it names only if its public key matches
 *      --ca-cert-hash, or — without a hash — if the cluster-info signature for this token
 *      checks out (only someone holding the token's secret could have made it);
 *   2. TLS bootstrap: with the token, over TLS verified against that CA, submit a
 *      CertificateSigningRequest for CN=system:node:<name>, O=system:nodes (signer
 *      kubernetes.io/kube-apiserver-client-kubelet), wait for it to be approved and signed;
 *   3. write the node's kubeconfig (its own key and certificate, the CA, `server:` as given)
 *      and start the kubelet with it. CNI config and the node agents come from the
 *      DaemonSets (deploy/pontoon.yaml) once the Node registers.
 *
 * The token is used for nothing but step 2; a refused token stops the join before anything
 * is written or started, with the server's reason on one line.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { stringify as toYaml } from 'yaml';
import {
  CLUSTER_INFO_KUBECONFIG_KEY,
  CLUSTER_INFO_NAME,
  CLUSTER_INFO_NAMESPACE,
  CLUSTER_INFO_SIGNATURE_PREFIX,
  parseBootstrapToken,
} from '../api/bootstrap-token.js';
import { type CertificateSigningRequest, isDenied, isFailed, NODE_USER_PREFIX, NODES_GROUP, SIGNER_KUBE_APISERVER_CLIENT_KUBELET, SIGNER_KUBELET_SERVING } from '../api/certificates.js';
import { RESOURCE } from '../api/resources.js';
import type { ConfigMap } from '../api/types.js';
import { ApiError } from '../client/api.js';
import { KubeClient } from '../client/client.js';
import { PontoonError } from '../lib/errors.js';
import { startDetached } from '../lib/exec.js';
import { verifyDetachedHs256 } from '../lib/jws-detached.js';
import { generateKeyAndCsr, publicKeyPin } from '../lib/x509.js';
import { parseClusterInfoKubeconfig } from './cluster-info.js';

export class JoinError extends PontoonError {}

export interface JoinOptions {
  server: string;
  token: string;
  nodeName: string;
  /** `sha256:<hex>` of the CA's public key; without it the cluster-info signature must verify. */
  caCertHash?: string;
  /** Where the kubeconfig, key and kubelet log go. */
  dir: string;
  /** The kubelet's --node-ip: with it, a serving certificate for that address is requested too. */
  nodeIp?: string;
  /** How long to wait for the certificate (and, without a hash, for the signature). */
  timeoutMs?: number;
  progress?: (line: string) => void;
}

export interface JoinResult {
  kubeconfig: string;
  caPem: string;
  csrName: string;
  /** With --node-ip: the kubelet's serving certificate, key and client CA (its --tls-* flags). */
  serving?: { certFile: string; keyFile: string; caFile: string };
}

function refused(err: unknown, what: string): JoinError {
  if (err instanceof ApiError && err.code === 401) {
    return new JoinError(`the apiserver refused the bootstrap token (${err.status.message ?? 'Unauthorized'}): create a new one with "pontoon token create"`);
  }
  if (err instanceof ApiError) return new JoinError(`failed to ${what}: ${err.message}`, { cause: err });
  return new JoinError(`failed to ${what}: ${(err as Error).message ?? String(err)}`, { cause: err });
}

/** Steps 1: the CA, checked by hash or by the token's signature. */
async function discoverCa(options: JoinOptions, tokenId: string, tokenSecret: string): Promise<string> {
  const anonymous = new KubeClient({ server: options.server, insecureSkipTlsVerify: true, timeoutMs: 10_000, userAgent: 'pontoon-join' });
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    let clusterInfo: ConfigMap | undefined;
    try {
      clusterInfo = await anonymous.get<ConfigMap>(RESOURCE.configmaps, CLUSTER_INFO_NAME, CLUSTER_INFO_NAMESPACE);
    } catch (err) {
      throw refused(err, `read ${CLUSTER_INFO_NAMESPACE}/${CLUSTER_INFO_NAME} from ${options.server}`);
    }
    const content = clusterInfo?.data?.[CLUSTER_INFO_KUBECONFIG_KEY];
    const info = content !== undefined ? parseClusterInfoKubeconfig(content) : undefined;
    if (!clusterInfo || !content || !info) throw new JoinError(`${options.server} publishes no usable ${CLUSTER_INFO_NAMESPACE}/${CLUSTER_INFO_NAME} (run "pontoon token create" on the control plane)`);
    if (options.caCertHash) {
      const pin = publicKeyPin(info.caPem);
      if (pin !== options.caCertHash.toLowerCase()) throw new JoinError(`the cluster CA's public key hash is ${pin}, not the --ca-cert-hash given (${options.caCertHash}): refusing to trust ${options.server}`);
      return info.caPem;
    }
    const signature = clusterInfo.data?.[`${CLUSTER_INFO_SIGNATURE_PREFIX}${tokenId}`];
    if (signature !== undefined) {
      if (!verifyDetachedHs256(content, signature, tokenId, tokenSecret)) throw new JoinError(`the cluster-info signature for token ${tokenId} does not match the token's secret: wrong token, or not the cluster you think`);
      return info.caPem;
    }
    // The signer adds a new token's signature within moments; an unknown token never gets one.
    if (Date.now() > deadline) throw new JoinError(`cluster-info has no signature for token ${tokenId}: the token does not exist, expired, or is not for signing (or pass --ca-cert-hash)`);
    await sleep(250);
  }
}

export async function joinNode(options: JoinOptions): Promise<JoinResult> {
  const progress = options.progress ?? (() => undefined);
  const token = parseBootstrapToken(options.token);
  if (!token) throw new JoinError('--token must look like abcdef.0123456789abcdef ([a-z0-9]{6}.[a-z0-9]{16})');
  if (!/^https:\/\//.test(options.server)) throw new JoinError(`--server must be an https:// URL, got "${options.server}"`);
  const caPem = await discoverCa(options, token.id, token.secret);
  progress(`✔ trusted the cluster CA (${publicKeyPin(caPem)})`);

  const bootstrap = new KubeClient({ server: options.server, ca: caPem, token: options.token, timeoutMs: 10_000, userAgent: 'pontoon-join' });
  const subject = { commonName: `${NODE_USER_PREFIX}${options.nodeName}`, organizations: [NODES_GROUP] };
  const client = await requestCertificate(bootstrap, options, { subject, signerName: SIGNER_KUBE_APISERVER_CLIENT_KUBELET, usages: ['digital signature', 'key encipherment', 'client auth'] });
  progress(`✔ certificate issued for ${NODE_USER_PREFIX}${options.nodeName} (${client.csrName})`);
  // The kubelet's TLS port (logs, exec, port-forward from the apiserver) needs a certificate
  // for the address the apiserver dials: asked for now, with the same token, so the node
  // never serves with a self-signed one the apiserver could not verify.
  const serving = options.nodeIp
    ? await requestCertificate(bootstrap, options, {
        subject,
        subjectAltNames: [`IP:${options.nodeIp}`, `DNS:${options.nodeName}`],
        signerName: SIGNER_KUBELET_SERVING,
        usages: ['digital signature', 'key encipherment', 'server auth'],
      })
    : undefined;
  if (serving) progress(`✔ serving certificate issued for ${options.nodeIp} (${serving.csrName})`);

  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  const kubeconfig = join(options.dir, 'kubeconfig');
  writeFileSync(kubeconfig, nodeKubeconfig({ server: options.server, caPem, certPem: client.certPem, keyPem: client.keyPem, nodeName: options.nodeName }), { mode: 0o600 });
  progress(`✔ kubeconfig written to ${kubeconfig}`);
  let servingFiles: JoinResult['serving'];
  if (serving) {
    const pki = join(options.dir, 'pki');
    mkdirSync(pki, { recursive: true, mode: 0o700 });
    servingFiles = { certFile: join(pki, 'kubelet.crt'), keyFile: join(pki, 'kubelet.key'), caFile: join(pki, 'ca.crt') };
    writeFileSync(servingFiles.certFile, serving.certPem);
    writeFileSync(servingFiles.keyFile, serving.keyPem, { mode: 0o600 });
    // The kubelet's --client-ca-file: the apiserver's kubelet-client certificate chains to it.
    writeFileSync(servingFiles.caFile, caPem);
    progress(`✔ kubelet serving certificate in ${pki}`);
  }
  return { kubeconfig, caPem, csrName: client.csrName, ...(servingFiles ? { serving: servingFiles } : {}) };
}

interface CertificateWanted {
  subject: { commonName: string; organizations: string[] };
  subjectAltNames?: string[];
  signerName: string;
  usages: string[];
}

/** Step 2 for one certificate: submit the request, wait until it is signed (or refused). */
async function requestCertificate(bootstrap: KubeClient, options: JoinOptions, wanted: CertificateWanted): Promise<{ keyPem: string; certPem: string; csrName: string }> {
  const { keyPem, csrPem } = generateKeyAndCsr(wanted.subject, wanted.subjectAltNames);
  const csrName = `node-csr-${randomBytes(8).toString('hex')}`;
  try {
    await bootstrap.create<CertificateSigningRequest>(RESOURCE.certificatesigningrequests, {
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { name: csrName },
      spec: { request: Buffer.from(csrPem).toString('base64'), signerName: wanted.signerName, usages: wanted.usages },
    });
  } catch (err) {
    throw refused(err, 'submit the certificate signing request');
  }
  options.progress?.(`✔ certificate signing request ${csrName} (${wanted.signerName}) submitted`);
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    let csr: CertificateSigningRequest | undefined;
    try {
      csr = await bootstrap.get<CertificateSigningRequest>(RESOURCE.certificatesigningrequests, csrName);
    } catch (err) {
      throw refused(err, `read certificate signing request ${csrName}`);
    }
    if (!csr) throw new JoinError(`certificate signing request ${csrName} was deleted before it was signed`);
    if (isDenied(csr) || isFailed(csr)) {
      const why = csr.status?.conditions?.find((c) => (c.type === 'Denied' || c.type === 'Failed') && c.status === 'True');
      throw new JoinError(`certificate signing request ${csrName} was ${why?.type === 'Denied' ? 'denied' : 'not signed'}: ${why?.message ?? why?.reason ?? 'no reason given'}`);
    }
    if (csr.status?.certificate) return { keyPem, certPem: Buffer.from(csr.status.certificate, 'base64').toString('utf8'), csrName };
    if (Date.now() > deadline) {
      const hint = wanted.signerName === SIGNER_KUBELET_SERVING ? 'does the controller-manager run with --kubelet-serving-approve-cidrs covering --node-ip?' : 'is the controller-manager running csrapproving and csrsigning?';
      throw new JoinError(`certificate signing request ${csrName} not signed within ${options.timeoutMs ?? 60_000} ms (${hint} approve it by hand: kubectl certificate approve ${csrName})`);
    }
    await sleep(200);
  }
}

export function nodeKubeconfig(options: { server: string; caPem: string; certPem: string; keyPem: string; nodeName: string }): string {
  const b64 = (text: string): string => Buffer.from(text).toString('base64');
  const user = `${NODE_USER_PREFIX}${options.nodeName}`;
  return toYaml({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'default',
    clusters: [{ name: 'default', cluster: { server: options.server, 'certificate-authority-data': b64(options.caPem) } }],
    users: [{ name: user, user: { 'client-certificate-data': b64(options.certPem), 'client-key-data': b64(options.keyPem) } }],
    contexts: [{ name: 'default', context: { cluster: 'default', user } }],
  });
}

interface JoinFlags {
  server?: string;
  token?: string;
  nodeName?: string;
  caCertHash?: string;
  dir: string;
  timeout: string;
  start: boolean;
  nodeIp?: string;
}

export function registerJoin(program: Command): void {
  program
    .command('join')
    .description('make this host a node of a cluster: exchange a bootstrap token for node credentials, write the kubeconfig, start the kubelet')
    .requiredOption('--server <url>', 'the apiserver, https://HOST:6443 (as `pontoon token create --print-join-command` prints it)')
    .requiredOption('--token <token>', 'bootstrap token ID.SECRET')
    .option('--ca-cert-hash <sha256:hex>', 'pin of the cluster CA public key; without it the cluster-info signature for the token must verify')
    .option('--node-name <name>', 'the Node name (default: the host name)')
    .option('--node-ip <ip>', 'the kubelet\'s --node-ip')
    .option('--dir <path>', 'where the kubeconfig, key and kubelet log go', '/var/lib/pontoon')
    .option('--timeout <seconds>', 'how long to wait for the certificate', '60')
    .option('--no-start', 'only get the credentials; do not start the kubelet')
    .action(async (flags: JoinFlags) => {
      const nodeName = (flags.nodeName ?? hostname()).toLowerCase();
      const timeoutSeconds = Number(flags.timeout);
      if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new JoinError(`--timeout must be a positive number of seconds, got "${flags.timeout}"`);
      const result = await joinNode({
        server: flags.server ?? '',
        token: flags.token ?? '',
        nodeName,
        ...(flags.caCertHash ? { caCertHash: flags.caCertHash } : {}),
        dir: flags.dir,
        ...(flags.nodeIp ? { nodeIp: flags.nodeIp } : {}),
        timeoutMs: timeoutSeconds * 1000,
        progress: (line) => console.log(line),
      });
      // What deploy/systemd/pontoon-kubelet.service reads: the unit is the same file on every node.
      const envFile = join(flags.dir, 'kubelet.env');
      writeFileSync(envFile, `# Written by pontoon join; read by deploy/systemd/pontoon-kubelet.service.\nPONTOON_NODE_NAME=${nodeName}\nPONTOON_NODE_IP=${flags.nodeIp ?? ''}\n`);
      console.log(`✔ ${envFile} written (for the pontoon-kubelet unit)`);
      if (!flags.start) return;
      const tls = result.serving ? ['--tls-cert-file', result.serving.certFile, '--tls-private-key-file', result.serving.keyFile, '--client-ca-file', result.serving.caFile] : [];
      const argv = [process.execPath, process.argv[1] ?? 'pontoon', 'kubelet', '--kubeconfig', result.kubeconfig, '--node-name', nodeName, '--root-dir', join(flags.dir, 'kubelet'), ...(flags.nodeIp ? ['--node-ip', flags.nodeIp] : []), ...tls];
      const pid = startDetached(argv, join(flags.dir, 'kubelet.log'));
      writeFileSync(join(flags.dir, 'kubelet.pid'), `${pid}\n`);
      console.log(`✔ kubelet started (pid ${pid}, log ${join(flags.dir, 'kubelet.log')}); node agents follow from the DaemonSets once ${nodeName} registers`);
    });
}
