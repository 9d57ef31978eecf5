/** OHIF 3.13 configuration for lnm-node: one DICOMweb data source on the SAME origin as the
 * viewer (the test proxy in tests/support/ohif.py and the nginx of deploy/ohif/nginx.conf both
 * serve the viewer at / and forward /dicom-web/ to Orthanc), so no CORS set-up is needed. */
const dicomWebRoot = window.location.origin + '/dicom-web';

window.config = {
  name: 'lnm-node',
  routerBasename: null,
  extensions: [],
  modes: [],
  customizationService: { 'ohif.tours': { $set: [] } },
  showStudyList: true,
  maxNumberOfWebWorkers: 2,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: false,
  showLoadingIndicator: true,
  strictZSpacingForVolumeViewport: true,
  investigationalUseDialog: { option: 'never' },
  maxNumRequests: { interaction: 100, thumbnail: 5, prefetch: 10 },
  showErrorDetails: 'always',
  defaultDataSourceName: 'orthanc',
  dataSources: [
    {
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'orthanc',
      configuration: {
        friendlyName: 'Orthanc (lnm-node results)',
        name: 'orthanc',
        wadoUriRoot: dicomWebRoot,
        qidoRoot: dicomWebRoot,
        wadoRoot: dicomWebRoot,
        qidoSupportsIncludeField: false,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: false,
        supportsWildcard: true,
        dicomUploadEnabled: false,
        omitQuotationForMultipartRequest: true,
        bulkDataURI: { enabled: true },
      },
    },
  ],
};
