// Starts Swagger UI on #swagger-ui with the document its data-url names. A file of its own rather
// than an inline script, so that a Content-Security-Policy for /docs can stay at script-src 'self'.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: new URL(root.dataset.url, document.baseURI).href,
    domNode: root,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    // Swagger UI would otherwise send the document to validator.swagger.io for its badge
    validatorUrl: null,
  });
})();
