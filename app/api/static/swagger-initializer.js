// Starts Swagger UI on /openapi.json. A file of its own, not an inline script: the
// page's Content-Security-Policy allows scripts from this origin only.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // No call to the public validator service: nothing leaves this origin.
    validatorUrl: null,
    // Keeps the bearer token across reloads of this tab only (Authorize button).
    persistAuthorization: false,
  });
});
