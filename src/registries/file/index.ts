// The file registry's public surface.
export { FileRegistry, type FileRegistryOptions, isManifestName } from './file-registry.ts';
export {
  API_VERSIONS,
  docKey,
  type InvalidDoc,
  KINDS,
  type ParsedDoc,
  type ParsedFile,
  parseManifests,
  type ParseOptions,
  type ValidDoc,
} from './manifest.ts';
export { type Collected, collect, type ServedFile, serveFailure, serveFile } from './serving.ts';
